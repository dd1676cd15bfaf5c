// pg-boss background work: `pg-idempotency/jobs`. Loads pg-boss; the main entry does not.
export { registerJobs, type RegisterJobsOptions, type RegisteredJobs } from './register-jobs.ts'
export { requestCustomerDeletion, type CustomerDeletionRequest, type CustomerDeletionAccepted } from './request-customer-deletion.ts'
export { SWEEP_QUEUE, CUSTOMER_DELETION_QUEUE, type CustomerDeletionJob } from './queues.ts'
