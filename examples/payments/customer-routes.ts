// Scenario 1 of shared/scenarios.md: customers created with the client's own identifier, found
// without their UUID, named on every call by one of two headers, and deleted in the background.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { PgBoss } from 'pg-boss'
import { createCustomer, CustomerNotFoundError, findCustomer, getCustomerDeletion, IdempotencyError, type Customer } from '../../src/index.ts'
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
        return reply.code(created ? 201 : 200).send({ data: customerData(customer) })
      }),
  )

  app.get<{ Querystring: { idempotent_identifier?: string } }>('/customers', (request, reply) =>
    answer(reply, async () => {
      const customer = await findCustomer(db, { clientId: clientOf(request), idempotentIdentifier: request.query.idempotent_identifier ?? '' })
      if (!customer) throw new CustomerNotFoundError()
      return { data: customerData(customer) }
    }),
  )

  // On behalf of a customer: X-Customer-Id or X-Customer-Idempotent-Identifier, never both. The
  // adapter resolves the customer (400, 404 or 410 problems otherwise), puts it in the key's
  // scope and row, and hands it to the handler; a GET takes no key.
  const onBehalf = { customer: true } as const
  app.get(
    '/financial/accounts',
    app.idempotent<Kysely<PaymentsDatabase>>(onBehalf, async ({ tx, customer }) => ({
      status: 200,
      body: await tx.selectFrom('financial_accounts').selectAll().where('customer_id', '=', customer!.customerId).orderBy('created_at').execute(),
    })),
  )
  app.post<{ Body: { name: string } }>(
    '/financial/accounts',
    { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: 100 } } } } },
    app.idempotent<Kysely<PaymentsDatabase>>(onBehalf, async ({ tx, request, customer }) => {
      const account = await tx
        .insertInto('financial_accounts')
        .values({ customer_id: customer!.customerId, name: (request.body as { name: string }).name })
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
      if (!deletion || deletion.clientId !== clientOf(request)) throw new CustomerNotFoundError()
      // Who the client is stays on the server: the caller knows, and a response is no place for it.
      const { clientId: _owner, ...progress } = deletion
      return progress
    }),
  )
}

/** A customer as scenario 1's platform shows it: `data.customer_id` beside `client_metadata`. */
function customerData(customer: Customer) {
  return {
    customer_id: customer.customerId,
    client_metadata: { idempotent_identifier: customer.idempotentIdentifier },
    context: customer.context,
    status: customer.status,
    created_at: customer.createdAt,
  }
}
