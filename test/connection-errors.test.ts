import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { expect, it } from 'vitest'
import { migrate } from '../src/index.ts'
import { connect } from '../tools/databases.ts'
import { freePort } from '../tools/local-postgres.ts'
import { launchPostgres } from '../tools/postgres-process.ts'

// docs/connection-errors.md's advice, followed by a process of its own, keeps it alive through a
// restart of a PostgreSQL server (a server of this test's own: the shared one stays up).
it('keeps a process that follows the documented advice alive through a server restart', async () => {
  const server = await launchPostgres({ port: await freePort(), flags: ['-c', 'fsync=off'] })
  const url = server.url
  const setup = connect(url, 1)
  await migrate(setup)
  await setup.destroy()

  const child = spawn(process.execPath, [new URL('./support/advice-child.ts', import.meta.url).pathname, url], { stdio: ['pipe', 'pipe', 'pipe'] })
  let errorOutput = ''
  child.stderr!.on('data', (chunk: Buffer) => (errorOutput += chunk.toString()))
  const exited = once(child, 'exit')
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  try {
    expect((await lines.next()).value).toBe('ready')
    // A fast shutdown ends every connection (57P01), idle ones included; then the server returns.
    await server.stop()
    await server.start()
    child.stdin!.write('go\n')
    const answer = await lines.next()
    expect(answer.value, errorOutput).toBe('ok "after-restart"')
    const [code] = await exited
    expect(code).toBe(0)
    // The advice's listeners saw the lost connections.
    expect(errorOutput).toMatch(/connection lost/)
  } finally {
    child.kill('SIGKILL')
    await server.remove()
  }
})
