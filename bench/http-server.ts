// The HTTP benchmark's server, in a process of its own so the load generator does not share its
// event loop: the same deposit endpoint bare (/bare/...) and behind the middleware (/idem/...).
// Argument: a database URL (migrated, with the bench tables). Prints the port when listening.
import Fastify, { type FastifyRequest } from 'fastify'
import { sql, type Kysely, type Transaction } from 'kysely'
import { idempotencyPlugin } from '../src/http/fastify.ts'
import { connect } from '../tools/databases.ts'
import type { HttpBenchDatabase } from './http-tables.ts'

type Deposit = { Params: { id: string }; Body: { amount: number } }

// The middleware on the recommended optimized pool; the bare endpoint on a plain one, as the
// user's own code runs. Idle connections stay open between the rounds that use them.
const db = connect<HttpBenchDatabase>(process.argv[2]!, 32, { optimized: true, idleTimeoutMillis: 0 })
const plainDb = connect<HttpBenchDatabase>(process.argv[2]!, 32, { idleTimeoutMillis: 0 })
const app = Fastify()
await app.register(idempotencyPlugin, { db, client: () => 'bench' })

/** The business transaction: lock the account, insert a ledger row, update the balance. */
async function deposit(tx: Transaction<HttpBenchDatabase>, accountId: number, amount: number) {
  await tx.selectFrom('bench_http_accounts').select('id').where('id', '=', accountId).forUpdate().executeTakeFirstOrThrow()
  const entry = await tx.insertInto('bench_http_ledger').values({ account_id: accountId, amount }).returning(['id', 'amount']).executeTakeFirstOrThrow()
  await tx.updateTable('bench_http_accounts').set({ balance: sql`balance + ${amount}` }).where('id', '=', accountId).execute()
  return entry
}

app.post<Deposit>('/bare/accounts/:id/deposits', async (request, reply) => {
  const entry = await plainDb.transaction().execute((tx) => deposit(tx, Number(request.params.id), request.body.amount))
  return reply.code(201).send(entry)
})

app.post<Deposit>(
  '/idem/accounts/:id/deposits',
  app.idempotent<Kysely<HttpBenchDatabase>>({ required: true }, async ({ tx, request }) => {
    const { params, body } = request as FastifyRequest<Deposit>
    return { status: 201, body: await deposit(tx, Number(params.id), body.amount) }
  }),
)

await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
console.log(typeof address === 'object' && address ? address.port : '')
process.once('SIGTERM', async () => {
  await app.close()
  await Promise.all([db.destroy(), plainDb.destroy()])
  process.exit(0)
})
