import type { PgBoss } from 'pg-boss'
import type { OutboxEvent, Publisher } from '../event.ts'

/**
 * Publishes each event as a pg-boss job in the queue named by its topic (or `queue(event)`), with
 * the event id as the job id, so a redelivery does not make a second job. The queue must exist.
 */
export function pgBossPublisher(boss: PgBoss, options: { queue?: (event: OutboxEvent) => string } = {}): Publisher {
  return {
    async publish(event) {
      const { eventId, topic, customerId, orderingKey, payload, createdAt } = event
      await boss.send(options.queue?.(event) ?? topic, { eventId, topic, customerId, orderingKey, payload, createdAt: createdAt.toISOString() }, { id: eventId })
    },
  }
}
