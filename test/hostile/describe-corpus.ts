import { spawn, type ChildProcess } from 'node:child_process'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createApiClient } from '../../examples/payments/api-clients.ts'
import { useTestDatabase } from '../support/test-database.ts'
import { sendRaw } from './raw-http.ts'
import { formatReport, runCorpus } from './run-corpus.ts'

const HEALTH: Record<string, string> = { payments: '/customers?idempotent_identifier=health-check' }

/**
 * Runs the hostile-input corpus against one server (an adapter's app, or the example service),
 * started in a child process on this file's own database, and prints the counts.
 */
export function describeHostileCorpus(framework: 'express' | 'fastify' | 'hono' | 'payments'): void {
  const database = useTestDatabase({ maxConnections: 4 })
  let child: ChildProcess
  let port = 0
  let exitedWith: string | undefined

  beforeAll(async () => {
    child = spawn(process.execPath, [new URL('./serve.ts', import.meta.url).pathname, framework, database.url], { stdio: ['ignore', 'pipe', 'inherit'] })
    port = await new Promise<number>((resolve, reject) => {
      let out = ''
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        const match = /listening (\d+)/.exec(out)
        if (match) resolve(Number(match[1]))
      })
      child.once('exit', (code, signal) => {
        exitedWith = `${code ?? signal}`
        reject(new Error(`the ${framework} server exited (${exitedWith}) before listening`))
      })
    })
  })
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
  })

  it(`answers every entry of the hostile corpus as documented (${framework})`, { timeout: 30 * 60_000 }, async () => {
    const path = HEALTH[framework] ?? '/h/health'
    const report = await runCorpus({
      name: framework,
      corpus: framework === 'payments' ? 'payments' : 'adapters',
      port,
      db: database.db,
      schemas: ['public', 'idempotency'],
      ...(framework === 'payments' ? { registerClient: async (name: string) => (await createApiClient(database.db, name)).apiKey } : {}),
      async waitUntilResponsive() {
        // A server stuck on one request answers this once it is free again.
        const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
        for (let attempt = 0; attempt < 20; attempt++) if ((await sendRaw(port, request, 15_000)).kind === 'response') return
      },
    })
    console.log(formatReport(report))
    // A crash shows as every later entry closed; say so plainly.
    expect(exitedWith, `the ${framework} server process exited during the corpus`).toBeUndefined()
    expect(report.failures.length, `hostile corpus on ${framework}: entries that failed (the table above)`).toBe(0)
  })
}
