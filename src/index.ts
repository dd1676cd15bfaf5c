// The package root: the kysely entry point, as it has always been (`pg-idempotency/kysely` is the
// same module). Other data layers have their own: `pg-idempotency/pg`, `/knex`, `/drizzle`,
// `/prisma`, `/postgres`. Importing it loads no data layer: kysely is imported when a statement
// first runs.
export * from './data/kysely/index.ts'
