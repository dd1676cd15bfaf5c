// Generates the Prisma client the tests use from schema.prisma into ./generated (git-ignored),
// before the type check (npm's pretest and pretypecheck) and before vitest's files run (its
// globalSetup); skipped when the schema and Prisma's version have not changed since the last run.
//
// Prisma 7's `generate` looks for its schema engine and, with none installed, tries to download
// it, which fails offline. Generation does not run that engine, so it is pointed at an executable
// that exists everywhere (Node itself) with its checksum check off, for this child process only.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const SCHEMA = here('./schema.prisma')
const STAMP = here('./generated/.generated-from')
const require = createRequire(import.meta.url)

/** Runs `prisma generate` unless the client is already generated from this schema and Prisma. */
export async function generatePrismaClient(): Promise<{ generated: boolean; milliseconds: number }> {
  const started = performance.now()
  const cli = require.resolve('prisma/build/index.js')
  const prismaVersion = (require('prisma/package.json') as { version: string }).version
  const stamp = createHash('sha256').update(prismaVersion).update(await readFile(SCHEMA)).digest('hex')
  if ((await readFile(STAMP, 'utf8').catch(() => '')) === stamp) return { generated: false, milliseconds: performance.now() - started }
  await promisify(execFile)(process.execPath, [cli, 'generate', '--schema', SCHEMA], {
    env: {
      ...process.env,
      PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING: '1',
      PRISMA_SCHEMA_ENGINE_BINARY: process.execPath,
      // No update check or telemetry call to Prisma's servers.
      CHECKPOINT_DISABLE: '1',
      PRISMA_HIDE_UPDATE_MESSAGE: '1',
    },
  })
  await writeFile(STAMP, stamp)
  return { generated: true, milliseconds: performance.now() - started }
}

if (import.meta.main) {
  const { generated, milliseconds } = await generatePrismaClient()
  console.log(generated ? `Prisma client for the tests generated in ${Math.round(milliseconds)} ms` : 'Prisma client for the tests is up to date')
}
