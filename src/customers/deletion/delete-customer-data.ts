import { validate as isUuid } from 'uuid'
import { inTransaction, type IdempotencyDatabase } from '../../data/database.ts'
import { toDatabase, type DatabaseInput } from '../../data/resolve-database.ts'
import type { SqlSession } from '../../data/sql-session.ts'
import { sql, type SqlFragment } from '../../data/statement.ts'
import { CustomerReferenceError, IdempotencyError, IdempotencyUsageError } from '../../errors.ts'
import { checkBatchSize, deleteUntilShort } from '../../store/batches.ts'
import { dateOf, dateOrNull, epochMillis } from '../../store/database-time.ts'
import { translateDatabaseError } from '../../store/database-errors.ts'
import { SqlState, sqlStateOf } from '../../store/sql-state.ts'
import { DEFAULT_SCHEMA } from '../../store/schema-name.ts'
import { customerTables } from '../customer-store.ts'
import { deletionTargets, type DeletionTarget, type RegisteredCustomerTable } from './dependent-tables.ts'

export interface DeleteCustomerDataOptions {
  schema?: string
  /** Rows per batch, each batch its own short transaction. Default 1000. */
  batchSize?: number
  /** Tables without a foreign key to the customers table that hold customers' rows. */
  tables?: RegisteredCustomerTable[]
  /** Stops between batches (a worker shutting down); a later run carries on. */
  signal?: AbortSignal
}

/**
 * A deletion's progress, readable while it runs and after it finished. It outlives the customer,
 * so it names the customer by the server's id only, never by the client's identifier; a
 * deletion job's output (which pg-boss keeps) is this record.
 */
export interface CustomerDeletion {
  customerId: string
  /** The API client the customer belonged to. */
  clientId: string
  state: 'queued' | 'running' | 'done'
  /** Rows deleted so far, by `schema.table`. */
  deletedRows: Record<string, number>
  requestedAt: Date
  startedAt: Date | null
  finishedAt: Date | null
}

/**
 * A deletion record as selected: text only, decoded by {@link toDeletion}; one lower-case word per
 * name, which no column-name transform of a data layer renames.
 */
interface DeletionRow {
  customerid: string
  clientid: string
  state: CustomerDeletion['state']
  /** JSON: `{"schema.table": rows}` */
  deletedrows: string
  /** Milliseconds since the epoch, as the three below. */
  requestedat: string
  startedat: string | null
  finishedat: string | null
}

const DELETION_COLUMNS = sql`customer_id::text as customerid, client_id::text as clientid, state::text as state, deleted_rows::text as deletedrows,
  ${epochMillis('requested_at')}, ${epochMillis('started_at')}, ${epochMillis('finished_at')}`

// A row of a table without a foreign key may still arrive during the final transaction; the
// job goes round this many times before it gives up and lets pg-boss retry it later.
const FINAL_PASSES = 5

/**
 * Deletes everything that belongs to a customer whose deletion was requested, in bounded
 * batches so no lock is held for long: the rows of every table that leads to the customer by
 * foreign keys (children first), the registered tables, its idempotency keys, and finally the
 * customer row, which frees its identifier. Every batch commits with its progress, so the job can
 * crash, be stopped, run twice at once, or run again after it finished, and still end with
 * everything deleted exactly once.
 */
export async function deleteCustomerData(db: DatabaseInput, customerId: string, options: DeleteCustomerDataOptions = {}): Promise<CustomerDeletion> {
  if (!isUuid(customerId)) throw new CustomerReferenceError('The customer id must be a UUID.')
  const database = toDatabase(db)
  try {
    return await runDeletion(database, customerId, options)
  } catch (error) {
    // A stop (AbortSignal) and the library's own errors pass as they are; a registered table that
    // does not exist or whose column is not a uuid becomes a typed store error.
    if (error instanceof IdempotencyError || options.signal?.aborted) throw error
    throw translateDatabaseError(error, 1)
  }
}

async function runDeletion(db: IdempotencyDatabase, customerId: string, options: DeleteCustomerDataOptions): Promise<CustomerDeletion> {
  const schema = options.schema ?? DEFAULT_SCHEMA
  const batchSize = checkBatchSize(options.batchSize)
  const { deletions } = customerTables(schema)

  const started = await rowsOf(
    db,
    sql`update ${deletions} set state = 'running', started_at = coalesce(started_at, now())
         where customer_id = ${customerId}::uuid and state <> 'done' returning 1 as started`,
  )
  if (!started[0]) {
    const existing = await readDeletion(db, schema, customerId)
    if (!existing) throw new IdempotencyUsageError(`No deletion was requested for customer ${customerId}.`)
    return existing
  }

  const targets = await inTransaction(db, (session) => deletionTargets(session, schema, options.tables))
  for (let pass = 1; ; pass++) {
    for (const branch of branchesOf(targets)) await deleteBranch(db, schema, customerId, branch, batchSize, options.signal)
    for (const target of targets.filter((t) => t.branch === undefined)) await deleteInBatches(db, schema, customerId, target, batchSize, options.signal)
    options.signal?.throwIfAborted()
    try {
      if (await finish(db, schema, customerId, targets)) break
    } catch (error) {
      // A row the application inserted a moment ago still points at the customer, or another run
      // of the job made this one a deadlock victim: go round again.
      const state = sqlStateOf(error)
      const again = state === SqlState.FOREIGN_KEY_VIOLATION || state === SqlState.DEADLOCK_DETECTED
      if (!again || pass >= FINAL_PASSES) throw error
    }
  }
  return (await readDeletion(db, schema, customerId))!
}

/** The tables found through foreign keys, grouped by the table that references the customer: deepest first in each. */
function branchesOf(targets: DeletionTarget[]): DeletionTarget[][] {
  const branches = new Map<string, DeletionTarget[]>()
  for (const target of targets) {
    if (target.branch !== undefined) branches.set(target.branch, [...(branches.get(target.branch) ?? []), target])
  }
  return [...branches.values()]
}

/**
 * Deletes a branch subtree by subtree: a chunk of the customer's rows in the branch table, then
 * everything below them (deepest first), then the chunk itself. Each batch's join then only walks
 * the chunk's own subtree, so batches cost the same at the end of a big customer as at the start.
 */
async function deleteBranch(db: IdempotencyDatabase, schema: string, customerId: string, branch: DeletionTarget[], batchSize: number, signal: AbortSignal | undefined) {
  const top = branch[branch.length - 1]!
  const chunkSize = Math.max(1, Math.floor(batchSize / 10))
  // As many chunks as the branch had rows when it started: rows the application adds meanwhile
  // are left to the final transaction, so a steady writer cannot keep this loop going.
  const counted = await rowsOf(db, sql`select count(*)::text as n from (${top.select(customerId, null, 'none')}) as s`)
  for (let chunks = Math.ceil(Number(counted[0]!.n) / chunkSize) + 1; chunks > 0; chunks--) {
    signal?.throwIfAborted()
    const rows = await rowsOf(db, top.select(customerId, chunkSize, 'none'))
    if (rows.length === 0) return
    const chunk = rows.map((row) => `${row.toid}:${row.tid}`)
    let chunkRowsDeleted = 0
    // Deepest first; the branch table itself comes last, so its count is the chunk's.
    for (const target of branch) chunkRowsDeleted = await deleteInBatches(db, schema, customerId, target, batchSize, signal, chunk)
    // Rows another transaction holds (or that gained a child meanwhile) stay for the final
    // transaction, which waits for them; going round again would find the same chunk.
    if (chunkRowsDeleted === 0) return
  }
}

/**
 * Deletes one table's rows of the customer (or of a chunk of its branch), a batch per transaction,
 * until a batch comes back short; returns how many it deleted. Rows another transaction holds are
 * skipped here; the final transaction waits for them.
 */
async function deleteInBatches(
  db: IdempotencyDatabase,
  schema: string,
  customerId: string,
  target: DeletionTarget,
  batchSize: number,
  signal: AbortSignal | undefined,
  within?: string[],
): Promise<number> {
  return deleteUntilShort(batchSize, signal, () =>
    inTransaction(db, async (session) => {
      const count = await countOf(
        session,
        sql`with batch as (${target.select(customerId, batchSize, 'skip locked', within)}),
          deleted as (delete from ${target.table} as t using batch where t.ctid = batch.tid::tid and t.tableoid = batch.toid::oid returning 1)
          select count(*)::text as n from deleted`,
      )
      if (count > 0) await addProgress(session, schema, customerId, target.label, count)
      return count
    })
      .catch((error: unknown) => {
        // A child row arrived under a row of this batch, or another run of the job deleting the
        // same rows made this batch a deadlock victim: leave the rows for the final transaction.
        const state = sqlStateOf(error)
        if (state === SqlState.FOREIGN_KEY_VIOLATION || state === SqlState.DEADLOCK_DETECTED) return 0
        throw error
      }),
  )
}

/** One transaction: whatever rows arrived since, the customer row, and the progress record. */
async function finish(db: IdempotencyDatabase, schema: string, customerId: string, targets: DeletionTarget[]): Promise<boolean> {
  const { customers, deletions } = customerTables(schema)
  return inTransaction(db, async (session) => {
    // Locking the customer row first stops new rows that reference it by foreign key (their
    // check needs a share lock on it) until this transaction has deleted it.
    await session.run(sql`select 1 from ${customers} where customer_id = ${customerId}::uuid for update`.toStatement())
    for (const target of targets) {
      const count = await countOf(session, sql`with deleted as (${target.deleteAll(customerId)} returning 1) select count(*)::text as n from deleted`)
      if (count > 0) await addProgress(session, schema, customerId, target.label, count)
    }
    const removed = await countOf(
      session,
      sql`with deleted as (delete from ${customers} where customer_id = ${customerId}::uuid returning 1) select count(*)::text as n from deleted`,
    )
    if (removed > 0) await addProgress(session, schema, customerId, `${schema}.customers`, 1)
    await session.run(sql`update ${deletions} set state = 'done', finished_at = coalesce(finished_at, now()) where customer_id = ${customerId}::uuid`.toStatement())
    return true
  })
}

async function addProgress(session: SqlSession, schema: string, customerId: string, label: string, count: number) {
  const { deletions } = customerTables(schema)
  await session.run(
    sql`
    update ${deletions}
       set deleted_rows = jsonb_set(deleted_rows, array[${label}::text], to_jsonb(coalesce((deleted_rows ->> ${label}::text)::bigint, 0) + ${count}::bigint))
     where customer_id = ${customerId}::uuid`.toStatement(),
  )
}

/** The rows of one statement run in a short transaction of its own. */
function rowsOf(db: IdempotencyDatabase, fragment: SqlFragment) {
  return inTransaction(db, (session) => session.run(fragment.toStatement()))
}

/** The `n` a `select count(*)::text as n` statement returned. */
async function countOf(session: SqlSession, fragment: SqlFragment): Promise<number> {
  const rows = await session.run(fragment.toStatement())
  return Number(rows[0]?.n ?? 0)
}

/** A deletion's progress, or undefined if none was ever requested for that customer. */
export async function getCustomerDeletion(db: DatabaseInput, customerId: string, options: { schema?: string } = {}): Promise<CustomerDeletion | undefined> {
  if (!isUuid(customerId)) throw new CustomerReferenceError('The customer id must be a UUID.')
  return readDeletion(toDatabase(db), options.schema, customerId)
}

async function readDeletion(db: IdempotencyDatabase, schema: string | undefined, customerId: string): Promise<CustomerDeletion | undefined> {
  const { deletions } = customerTables(schema)
  const rows = (await rowsOf(db, sql`select ${DELETION_COLUMNS} from ${deletions} where customer_id = ${customerId}::uuid`)) as unknown as DeletionRow[]
  const row = rows[0]
  return row && toDeletion(row)
}

function toDeletion(row: DeletionRow): CustomerDeletion {
  const deletedRows = JSON.parse(row.deletedrows) as Record<string, number | string>
  return {
    customerId: row.customerid,
    clientId: row.clientid,
    state: row.state,
    deletedRows: Object.fromEntries(Object.entries(deletedRows).map(([table, count]) => [table, Number(count)])),
    requestedAt: dateOf(row.requestedat),
    startedAt: dateOrNull(row.startedat),
    finishedAt: dateOrNull(row.finishedat),
  }
}
