// The billing service's tables as Drizzle sees them. tables.sql creates them (a DBA reads and runs
// that file); the idempotency schema comes from the library's migrate(). A schema of their own
// keeps them apart from other services' tables in the same database.
import { bigint, pgSchema, text, timestamp, uuid } from 'drizzle-orm/pg-core'

const billing = pgSchema('billing')

/** The service's API clients; only a SHA-256 of each key is kept (hex). */
export const apiClients = billing.table('api_clients', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  keySha256: text('key_sha256').notNull().unique(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
})

/** An invoice belongs to the API client that issued it: no other client can read or pay it. Amounts in minor units. */
export const invoices = billing.table('invoices', {
  id: uuid('id').primaryKey().defaultRandom(),
  clientId: uuid('client_id').notNull().references(() => apiClients.id),
  customer: text('customer').notNull(),
  currency: text('currency').notNull(),
  amountDue: bigint('amount_due', { mode: 'number' }).notNull(),
  amountPaid: bigint('amount_paid', { mode: 'number' }).notNull().default(0),
  status: text('status', { enum: ['open', 'paid', 'void'] }).notNull().default('open'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
})

export const payments = billing.table('payments', {
  id: uuid('id').primaryKey().defaultRandom(),
  invoiceId: uuid('invoice_id').notNull().references(() => invoices.id),
  amount: bigint('amount', { mode: 'number' }).notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
})

export type Invoice = typeof invoices.$inferSelect
export type Payment = typeof payments.$inferSelect
