// A pg-boss on a test file's database with the customer deletion queue created, as the tests
// that request deletions need it; stopped without waiting for jobs in flight.
import { PgBoss } from 'pg-boss'
import { CUSTOMER_DELETION_QUEUE } from '../../src/jobs/index.ts'

export async function startDeletionBoss(connectionString: string, max: number): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString, schema: 'pgboss', max })
  boss.on('error', () => {})
  await boss.start()
  await boss.createQueue(CUSTOMER_DELETION_QUEUE)
  return boss
}

export async function stopBoss(boss: PgBoss | undefined): Promise<void> {
  await boss?.stop({ graceful: false })
}
