// Run by prisma.test.ts as `node --import ./block-kysely.ts without-kysely.ts <module>`, with
// DATABASE_URL set: imports the given entry point of the library (the Prisma subpath), then runs one
// first call and one replay through it and prints the outcomes as JSON.
import { PrismaPg } from '@prisma/adapter-pg'
import { PrismaClient } from './generated/client.ts'

const entry = process.argv[2]!
const { withIdempotency } = (await import(entry)) as typeof import('../../../src/data/prisma/index.ts')
const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL! }) })
try {
  const key = { scope: 'without-kysely', key: `k-${process.pid}`, request: { n: 1 } }
  const run = () =>
    prisma.$transaction(async (tx) =>
      withIdempotency(tx, key, async (tx) => {
        await tx.contract_ledger.create({ data: { scope: key.key, amount: 1 } })
        return { ran: true }
      }),
    )
  console.log(JSON.stringify([await run(), await run()]))
} finally {
  await prisma.$disconnect()
}
