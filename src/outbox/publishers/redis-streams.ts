import type { OutboxEvent, Publisher } from '../event.ts'

/** The part of a node-redis client (`redis` package, v4 or later) the publisher uses. */
export interface RedisStreamsClient {
  xAdd(key: string, id: string, message: Record<string, string>): Promise<unknown>
}

/**
 * Appends each event to a Redis stream (`events` by default, or `stream(event)`), as fields
 * `event_id`, `topic`, `ordering_key`, `customer_id`, `created_at` and `payload` (JSON). Redis
 * streams do not deduplicate: consumers apply events through an inbox keyed on `event_id`.
 */
export function redisStreamsPublisher(client: RedisStreamsClient, options: { stream?: (event: OutboxEvent) => string } = {}): Publisher {
  return {
    async publish(event) {
      await client.xAdd(options.stream?.(event) ?? 'events', '*', {
        event_id: event.eventId,
        topic: event.topic,
        ordering_key: event.orderingKey ?? '',
        customer_id: event.customerId ?? '',
        created_at: event.createdAt.toISOString(),
        payload: JSON.stringify(event.payload),
      })
    },
  }
}
