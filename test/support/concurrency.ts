import pg from 'pg'

/**
 * Holds a transaction mid-way, to race others against it: the holder calls `hold()`, the test
 * awaits `entered`, does its racing, then calls `release()`.
 */
export class Latch {
  #release: (() => void) | undefined
  #entered: (() => void) | undefined
  entered = new Promise<void>((resolve) => (this.#entered = resolve))
  #gate = new Promise<void>((resolve) => (this.#release = resolve))
  async hold(): Promise<void> {
    this.#entered?.()
    await this.#gate
  }
  release(): void {
    this.#release?.()
  }
}


/** Resolves once `parties` callers have arrived; each caller awaits `arrive()`. */
export function barrier(parties: number): { arrive(): Promise<void> } {
  let arrived = 0
  let release!: () => void
  const all = new Promise<void>((resolve) => (release = resolve))
  return {
    arrive() {
      arrived++
      if (arrived === parties) release()
      return all
    },
  }
}

/**
 * Watches the server's lock table from a connection of its own, so a test can wait until its
 * transactions are really queued on an advisory lock instead of sleeping and hoping.
 */
export async function lockWatcher(url: string) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const waiting = async () => {
    const { rows } = await client.query<{ n: number }>(
      `select count(*)::int as n from pg_locks
        where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`,
    )
    return rows[0]?.n ?? 0
  }
  return {
    waiting,
    /** Polls until at least `count` transactions wait on an advisory lock (or fails after 30 s). */
    async untilWaiting(count: number): Promise<void> {
      const deadline = Date.now() + 30_000
      while ((await waiting()) < count) {
        if (Date.now() > deadline) throw new Error(`fewer than ${count} transactions ever waited on the advisory lock`)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    },
    close: () => client.end(),
  }
}
