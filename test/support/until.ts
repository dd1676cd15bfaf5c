/** Polls `check` every 50 ms until it gives a value (a job's result, say), for up to 30 s. */
export async function until<T>(check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error('timed out waiting for the job')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
