// Scenario 1 of shared/scenarios.md: customers created with the client's own identifier, found
// without their UUID, named on every call by one of two headers, and deleted in the background.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { PgBoss } from 'pg-boss'
import { createCustomer, customerReferenceFromHeaders, findCustomer, getCustomerDeletion, IdempotencyError, resolveCustomer } from '../../src/index.ts'
import { DEFAULT_PROBLEM_TYPE_BASE, problemFromError } from '../../src/http/index.ts'
import { requestCustomerDeletion } from '../../src/jobs/index.ts'
import type { PaymentsDatabase } from './schema.ts'

type CreateBody = { client_metadata: { idempotent_identifier: string }; context?: { type?: string; region?: string; locale?: string } }

export function registerCustomerRoutes(app: FastifyInstance, db: Kysely<PaymentsDatabase>, boss: PgBoss, clientOf: (request: FastifyRequest) => string) {
  // Library errors become problem details; anything else stays a 500 from Fastify.
  const answer = async (reply: FastifyReply, work: () => Promise<unknown>) => {
    try {
      return await work()
    } catch (error) {
      if (!(error instanceof IdempotencyError)) throw error
      const problem = problemFromError(DEFAULT_PROBLEM_TYPE_BASE, error, 422)
      return reply.code(problem.status).headers(problem.headers).send(problem.body)
    }
  }
  const header = (request: FastifyRequest) => (name: string) => {
    const value = request.headers[name]
    return Array.isArray(value) ? value[0] : value
  }

  // 201 for a new customer, 200 for the one the identifier already names; many at once make one.
  app.post<{ Body: CreateBody }>(
    '/customers',
    {
      schema: {
        body: {
          type: 'object',
          required: ['client_metadata'],
          properties: {
            client_metadata: { type: 'object', required: ['idempotent_identifier'], properties: { idempotent_identifier: { type: 'string' } } },
            context: { type: 'object', properties: { type: { type: 'string' }, region: { type: 'string' }, locale: { type: 'string' } } },
          },
        },
      },
    },
    (request, reply) =>
      answer(reply, async () => {
        const { customer, created } = await db.transaction().execute((tx) =>
          createCustomer(tx, {
            clientId: clientOf(request),
            idempotentIdentifier: request.body.client_metadata.idempotent_identifier,
            ...(request.body.context ? { context: request.body.context } : {}),
          }),
        )
        return reply.code(created ? 201 : 200).send(customer)
      }),
  )

  app.get<{ Querystring: { idempotent_identifier?: string } }>('/customers', (request, reply) =>
    answer(reply, async () => {
      const customer = await findCustomer(db, { clientId: clientOf(request), idempotentIdentifier: request.query.idempotent_identifier ?? '' })
      return customer ?? reply.code(404).send({ error: 'customer_not_found' })
    }),
  )

  // On behalf of a customer: X-Customer-Id or X-Customer-Idempotent-Identifier, never both.
  app.get('/financial/accounts', (request, reply) =>
    answer(reply, async () => {
      const customer = await resolveCustomer(db, { clientId: clientOf(request), ...customerReferenceFromHeaders(header(request)) })
      return db.selectFrom('financial_accounts').selectAll().where('customer_id', '=', customer.customerId).orderBy('created_at').execute()
    }),
  )
  app.post<{ Body: { name: string } }>(
    '/financial/accounts',
    { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: 100 } } } } },
    app.idempotent<PaymentsDatabase>({}, async ({ tx, request }) => {
      const customer = await resolveCustomer(tx, { clientId: clientOf(request), ...customerReferenceFromHeaders(header(request)) })
      const account = await tx
        .insertInto('financial_accounts')
        .values({ customer_id: customer.customerId, name: (request.body as { name: string }).name })
        .returningAll()
        .executeTakeFirstOrThrow()
      return { status: 201, body: account }
    }),
  )

  // 202 at once; the job deletes the customer's data in the background.
  app.delete<{ Params: { identifier: string } }>('/customers/idempotent-identifier/:identifier', (request, reply) =>
    answer(reply, async () => {
      const accepted = await requestCustomerDeletion(db, boss, { clientId: clientOf(request), idempotentIdentifier: request.params.identifier })
      return reply.code(202).send({ customer_id: accepted.customerId, status: 'deleting' })
    }),
  )
  app.get<{ Params: { id: string } }>('/customers/:id/deletion', { schema: { params: { type: 'object', properties: { id: { type: 'string', format: 'uuid' } } } } }, (request, reply) =>
    answer(reply, async () => {
      const deletion = await getCustomerDeletion(db, request.params.id)
      return deletion && deletion.clientId === clientOf(request) ? deletion : reply.code(404).send({ error: 'deletion_not_found' })
    }),
  )
}
