import type { PgBoss } from 'pg-boss'
import { deleteCustomerData } from '../customers/deletion/delete-customer-data.ts'
import { toDatabase, type DatabaseInput } from '../data/resolve-database.ts'
import type { RegisteredCustomerTable } from '../customers/deletion/dependent-tables.ts'
import { DEFAULT_SCHEMA } from '../store/schema-name.ts'
import type { Duration } from '../duration.ts'
import { pruneDeliveredEvents } from '../outbox/prune-delivered-events.ts'
import { sweepExpiredKeys } from '../sweep-expired-keys.ts'
import { CUSTOMER_DELETION_QUEUE, SWEEP_QUEUE, type CustomerDeletionJob } from './queues.ts'

export interface RegisterJobsOptions {
  /** Any data layer's database (`database(pool)` from `pg-idempotency/pg`, say), or a Kysely instance. */
  db: DatabaseInput
  schema?: string
  /**
   * The expiry sweep, which also prunes delivered outbox events older than `keepDeliveredEvents`
   * (default `'7d'`); `false` leaves it out.
   */
  sweep?: false | { cron?: string; batchSize?: number; keepDeliveredEvents?: Duration }
  /** Customer deletion: batch size and tables without foreign keys that hold customers' rows. */
  deletion?: { batchSize?: number; tables?: RegisteredCustomerTable[] }
  /** How often idle workers look for jobs. Default pg-boss's (2 s). */
  pollingIntervalSeconds?: number
}

export interface RegisteredJobs {
  sweepQueue: string | undefined
  deletionQueue: string
}

/**
 * Creates the library's pg-boss queues, the sweep's schedule (every five minutes by default) and
 * the workers, in one call after `boss.start()`. The sweep job's output is how many keys it
 * deleted and how many delivered events it pruned; a deletion job's output is the deletion's
 * progress record.
 *
 * @example
 * ```ts
 * const boss = new PgBoss(connectionString)
 * await boss.start()
 * await registerJobs(boss, { db, sweep: { cron: '*\/10 * * * *', batchSize: 5000 } })
 * ```
 */
export async function registerJobs(boss: PgBoss, options: RegisterJobsOptions): Promise<RegisteredJobs> {
  const schema = options.schema ?? DEFAULT_SCHEMA
  // Refuses what is not a database now, not at the first job.
  const database = toDatabase(options.db)
  await boss.createQueue(CUSTOMER_DELETION_QUEUE, { retryLimit: 20, retryDelay: 10, retryBackoff: true })
  const polling = options.pollingIntervalSeconds === undefined ? {} : { pollingIntervalSeconds: options.pollingIntervalSeconds }
  await boss.work<CustomerDeletionJob>(CUSTOMER_DELETION_QUEUE, polling, async ([job]) => {
    if (!job) return undefined
    return deleteCustomerData(database, job.data.customerId, { schema: job.data.schema ?? schema, ...options.deletion, signal: job.signal })
  })
  if (options.sweep === false) return { sweepQueue: undefined, deletionQueue: CUSTOMER_DELETION_QUEUE }
  const batchSize = options.sweep?.batchSize ?? 1000
  await boss.createQueue(SWEEP_QUEUE)
  await boss.schedule(SWEEP_QUEUE, options.sweep?.cron ?? '*/5 * * * *')
  const olderThan = options.sweep?.keepDeliveredEvents ?? '7d'
  await boss.work(SWEEP_QUEUE, polling, async ([job]) => {
    const signal = job ? { signal: job.signal } : {}
    return {
      deleted: await sweepExpiredKeys(database, { schema, batchSize, ...signal }),
      prunedEvents: await pruneDeliveredEvents(database, { schema, batchSize, olderThan, ...signal }),
    }
  })
  return { sweepQueue: SWEEP_QUEUE, deletionQueue: CUSTOMER_DELETION_QUEUE }
}
