// Prisma 7 (through @prisma/adapter-pg) as the contract suite opens it. The client is the one
// generate-client.ts makes from prisma/schema.prisma.
import { PrismaPg } from '@prisma/adapter-pg'
import { database, withIdempotency } from '../../src/data/prisma/index.ts'
import type { LayerUnderTest } from './layer-under-test.ts'
import { PrismaClient, type Prisma } from './prisma/generated/client.ts'

/** The user's own generated transaction client: what `prisma.$transaction(async (tx) => ...)` hands over. */
export type PrismaTx = Prisma.TransactionClient

export function openPrisma(url: string, maxConnections: number): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: maxConnections }) })
}

export const prismaLayer: LayerUnderTest<PrismaTx> = {
  name: 'prisma',
  async open(url, maxConnections) {
    const prisma = openPrisma(url, maxConnections)
    return {
      database: database(prisma),
      withIdempotency,
      async insertLedgerRow(tx, scope, amount) {
        await tx.contract_ledger.create({ data: { scope, amount } })
      },
      async notTransactions() {
        return [
          { label: 'the PrismaClient', value: prisma },
          { label: 'an extended PrismaClient', value: prisma.$extends({}) },
        ]
      },
      close: () => prisma.$disconnect(),
    }
  },
}
