// The relay and the broker publishers: `pg-idempotency/outbox`. emit() and withInbox() are in the
// main entry, as they run inside the application's own transactions.
export { createOutboxRelay, type RelayOptions, type RelayRound } from './relay.ts'
export type { OutboxEvent, Publisher } from './event.ts'
export { pgBossPublisher } from './publishers/pg-boss.ts'
export { redisStreamsPublisher, type RedisStreamsClient } from './publishers/redis-streams.ts'
export { natsJetStreamPublisher, type JetStreamPublishClient } from './publishers/nats-jetstream.ts'
export { pruneDeliveredEvents, type PruneOptions } from './prune-delivered-events.ts'
