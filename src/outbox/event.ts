/** An event as the relay hands it to a publisher. */
export interface OutboxEvent {
  /** Stable across redeliveries and across retries of the request that emitted it. */
  eventId: string
  topic: string
  orderingKey: string | null
  customerId: string | null
  payload: unknown
  createdAt: Date
  /** Deliveries tried before this one. */
  attempts: number
}

/** Delivers events to one destination. `publish` resolves once the destination has the event. */
export interface Publisher {
  publish(event: OutboxEvent): Promise<void>
}
