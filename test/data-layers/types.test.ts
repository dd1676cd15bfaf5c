// "Inside a transaction" as a type, per data layer: what is not a transaction is a compile error
// (tsc --noEmit checks the @ts-expect-error lines), and fn gets the layer's own transaction type.
import { drizzle } from 'drizzle-orm/node-postgres'
import type { Knex } from 'knex'
import type { Sql, TransactionSql } from 'postgres'
import type { Pool, PoolClient } from 'pg'
import { expectTypeOf, it } from 'vitest'
import * as drizzleLayer from '../../src/data/drizzle/index.ts'
import * as knexLayer from '../../src/data/knex/index.ts'
import * as pgLayer from '../../src/data/pg/index.ts'
import * as postgresLayer from '../../src/data/postgres/index.ts'

// Never called: only compiled.
function typeChecks(pool: Pool, client: PoolClient, knex: Knex, trx: Knex.Transaction, sql: Sql, tx: TransactionSql, reserved: Awaited<ReturnType<Sql['reserve']>>) {
  // @ts-expect-error a Pool is not a client inside BEGIN
  void pgLayer.withIdempotency(pool, 'k', async () => 1)
  void pgLayer.withIdempotency(client, 'k', async (c) => expectTypeOf(c).toEqualTypeOf<PoolClient>())
  expectTypeOf(pgLayer.database(pool).transaction).parameter(0).parameter(0).toEqualTypeOf<PoolClient>()

  // @ts-expect-error the Knex instance is not a transaction
  void knexLayer.withIdempotency(knex, 'k', async () => 1)
  void knexLayer.withIdempotency(trx, 'k', async (t) => expectTypeOf(t).toEqualTypeOf<Knex.Transaction>())

  // @ts-expect-error sql runs each statement in autocommit
  void postgresLayer.withIdempotency(sql, 'k', async () => 1)
  // @ts-expect-error so does a reserved connection
  void postgresLayer.withIdempotency(reserved, 'k', async () => 1)
  void postgresLayer.withIdempotency(tx, 'k', async (t) => expectTypeOf(t).toEqualTypeOf<TransactionSql>())

  const db = drizzle(pool)
  // @ts-expect-error the Drizzle database is not a transaction
  void drizzleLayer.withIdempotency(db, 'k', async () => 1)
  void drizzleLayer.database(db).transaction(async (dtx) => drizzleLayer.withIdempotency(dtx, 'k', async (inner) => expectTypeOf(inner).toEqualTypeOf(dtx)))
}

it('compiles (the checks above are for tsc)', () => {
  expectTypeOf(typeChecks).toBeFunction()
})
