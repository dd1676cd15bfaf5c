import type { TestProject } from 'vitest/node'
import { migrate } from '../../src/index.ts'
import { connect, createDatabase, dropDatabase, uniqueDatabaseName, withDatabase } from '../../tools/databases.ts'
import { startLocalPostgres } from '../../tools/local-postgres.ts'
import { exitOnSetupError } from '../../tools/postgres-process.ts'

declare module 'vitest' {
  export interface ProvidedContext {
    /** An admin connection string to the test server. */
    pgUrl: string
    /** A migrated database that every test file copies (`CREATE DATABASE ... TEMPLATE`). */
    pgTemplate: string
  }
}

export default async function setup(project: TestProject) {
  const server = await startLocalPostgres().catch(exitOnSetupError)
  console.log(`PostgreSQL for the tests: ${server.description}`)
  const template = uniqueDatabaseName('pgidem_template')
  try {
    await createDatabase(server.url, template)
    const db = connect(withDatabase(server.url, template), 1)
    try {
      await migrate(db)
    } finally {
      await db.destroy()
    }
  } catch (error) {
    await server.stop()
    throw error
  }
  project.provide('pgUrl', server.url)
  project.provide('pgTemplate', template)
  return async () => {
    await dropDatabase(server.url, template)
    await server.stop()
  }
}
