import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

/** Runs a command from the project root; resolves with its output or rejects with it. */
export async function runCommand(command: string, args: string[], env: Record<string, string> = {}) {
  return execFileAsync(command, args, { cwd: new URL('../..', import.meta.url), env: { ...process.env, ...env }, timeout: 60_000 })
}

/** Whether `command` can be run at all (psql is not on every machine). */
export async function hasCommand(command: string): Promise<boolean> {
  try {
    await execFileAsync(command, ['--version'])
    return true
  } catch {
    return false
  }
}
