import type { OutboxEvent, Publisher } from '../event.ts'

/** The part of a JetStream client (`@nats-io/jetstream`) the publisher uses. */
export interface JetStreamPublishClient {
  publish(subject: string, payload: Uint8Array | string, options: { msgID: string }): Promise<unknown>
}

/**
 * Publishes each event to JetStream on the subject named by its topic (or `subject(event)`), with
 * the event id as `Nats-Msg-Id`: JetStream drops a redelivery inside its duplicate window, and
 * the publish resolves only once the stream has stored the message.
 */
export function natsJetStreamPublisher(js: JetStreamPublishClient, options: { subject?: (event: OutboxEvent) => string } = {}): Publisher {
  return {
    async publish(event) {
      const message = JSON.stringify({
        eventId: event.eventId,
        topic: event.topic,
        orderingKey: event.orderingKey,
        customerId: event.customerId,
        createdAt: event.createdAt.toISOString(),
        payload: event.payload,
      })
      await js.publish(options.subject?.(event) ?? event.topic, message, { msgID: event.eventId })
    },
  }
}
