import { sql, type Kysely, type Transaction } from 'kysely'
import { validate as isUuid } from 'uuid'
import { CustomerReferenceError, IdempotencyError, IdempotencyUsageError } from '../../errors.ts'
import { checkBatchSize, deleteUntilShort } from '../../store/batches.ts'
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

interface DeletionRow {
  customer_id: string
  client_id: string
  state: CustomerDeletion['state']
  deleted_rows: Record<string, number>
  requested_at: Date
  started_at: Date | null
  finished_at: Date | null
}

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
export async function deleteCustomerData(db: Kysely<any>, customerId: string, options: DeleteCustomerDataOptions = {}): Promise<CustomerDeletion> {
  if (!isUuid(customerId)) throw new CustomerReferenceError('The customer id must be a UUID.')
  try {
    return await runDeletion(db, customerId, options)
  } catch (error) {
    // A stop (AbortSignal) and the library's own errors pass as they are; a registered table that
    // does not exist or whose column is not a uuid becomes a typed store error.
    if (error instanceof IdempotencyError || options.signal?.aborted) throw error
    throw translateDatabaseError(error, 1)
  }
}

async function runDeletion(db: Kysely<any>, customerId: string, options: DeleteCustomerDataOptions): Promise<CustomerDeletion> {
  const schema = options.schema ?? DEFAULT_SCHEMA
  const batchSize = checkBatchSize(options.batchSize)
  const { deletions } = customerTables(schema)

  const started = await sql<DeletionRow>`
    update ${deletions} set state = 'running', started_at = coalesce(started_at, now())
     where customer_id = ${customerId}::uuid and state <> 'done' returning *`.execute(db)
  if (!started.rows[0]) {
    const existing = await getCustomerDeletion(db, customerId, { schema })
    if (!existing) throw new IdempotencyUsageError(`No deletion was requested for customer ${customerId}.`)
    return existing
  }

  const targets = await deletionTargets(db, schema, options.tables)
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
  return (await getCustomerDeletion(db, customerId, { schema }))!
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
async function deleteBranch(db: Kysely<any>, schema: string, customerId: string, branch: DeletionTarget[], batchSize: number, signal: AbortSignal | undefined) {
  const top = branch[branch.length - 1]!
  const chunkSize = Math.max(1, Math.floor(batchSize / 10))
  // As many chunks as the branch had rows when it started: rows the application adds meanwhile
  // are left to the final transaction, so a steady writer cannot keep this loop going.
  const { rows: counted } = await sql<{ n: number }>`select count(*)::int as n from (${top.select(customerId, null, 'none')}) as s`.execute(db)
  for (let chunks = Math.ceil(counted[0]!.n / chunkSize) + 1; chunks > 0; chunks--) {
    signal?.throwIfAborted()
    const { rows } = await sql<{ toid: number; tid: string }>`${top.select(customerId, chunkSize, 'none')}`.execute(db)
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
  db: Kysely<any>,
  schema: string,
  customerId: string,
  target: DeletionTarget,
  batchSize: number,
  signal: AbortSignal | undefined,
  within?: string[],
): Promise<number> {
  return deleteUntilShort(batchSize, signal, () =>
    db
      .transaction()
      .execute(async (tx) => {
        const { numAffectedRows } = await sql`
          with batch as (${target.select(customerId, batchSize, 'skip locked', within)})
          delete from ${target.table} as t using batch where t.ctid = batch.tid and t.tableoid = batch.toid`.execute(tx)
        const count = Number(numAffectedRows ?? 0n)
        if (count > 0) await addProgress(tx, schema, customerId, target.label, count)
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
async function finish(db: Kysely<any>, schema: string, customerId: string, targets: DeletionTarget[]): Promise<boolean> {
  const { customers, deletions } = customerTables(schema)
  return db.transaction().execute(async (tx) => {
    // Locking the customer row first stops new rows that reference it by foreign key (their
    // check needs a share lock on it) until this transaction has deleted it.
    await sql`select 1 from ${customers} where customer_id = ${customerId}::uuid for update`.execute(tx)
    for (const target of targets) {
      const { numAffectedRows } = await target.deleteAll(customerId).execute(tx)
      const count = Number(numAffectedRows ?? 0n)
      if (count > 0) await addProgress(tx, schema, customerId, target.label, count)
    }
    const removed = await sql`delete from ${customers} where customer_id = ${customerId}::uuid`.execute(tx)
    if (Number(removed.numAffectedRows ?? 0n) > 0) await addProgress(tx, schema, customerId, `${schema}.customers`, 1)
    await sql`update ${deletions} set state = 'done', finished_at = coalesce(finished_at, now()) where customer_id = ${customerId}::uuid`.execute(tx)
    return true
  })
}

async function addProgress(tx: Transaction<any>, schema: string, customerId: string, label: string, count: number) {
  const { deletions } = customerTables(schema)
  await sql`
    update ${deletions}
       set deleted_rows = jsonb_set(deleted_rows, array[${label}], to_jsonb(coalesce((deleted_rows ->> ${label})::bigint, 0) + ${count}))
     where customer_id = ${customerId}::uuid`.execute(tx)
}

/** A deletion's progress, or undefined if none was ever requested for that customer. */
export async function getCustomerDeletion(db: Kysely<any>, customerId: string, options: { schema?: string } = {}): Promise<CustomerDeletion | undefined> {
  if (!isUuid(customerId)) throw new CustomerReferenceError('The customer id must be a UUID.')
  const { deletions } = customerTables(options.schema)
  const { rows } = await sql<DeletionRow>`select * from ${deletions} where customer_id = ${customerId}::uuid`.execute(db)
  const row = rows[0]
  if (!row) return undefined
  return {
    customerId: row.customer_id,
    clientId: row.client_id,
    state: row.state,
    deletedRows: Object.fromEntries(Object.entries(row.deleted_rows).map(([table, count]) => [table, Number(count)])),
    requestedAt: row.requested_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  }
}
