/** For a command that serves until stopped: Ctrl-C or SIGTERM runs `stop`, then exits. */
export function stopOnSignal(stop: () => Promise<void>): void {
  const exit = async () => {
    await stop()
    process.exit(0)
  }
  process.once('SIGINT', exit)
  process.once('SIGTERM', exit)
}
