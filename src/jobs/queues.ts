/** The pg-boss queues `registerJobs` creates. */
export const SWEEP_QUEUE = 'pg-idempotency-sweep-expired-keys'
export const CUSTOMER_DELETION_QUEUE = 'pg-idempotency-customer-deletion'

/** What a customer deletion job carries. */
export interface CustomerDeletionJob {
  customerId: string
  schema: string
}
