// The HTTP contract and the isolation contract (customers, SERIALIZABLE and REPEATABLE READ
// routes) on Hono with a data layer other than kysely.
import { postgresHttp } from './contract-layers.ts'
import { describeHttpContract } from './contract.ts'
import { describeIsolationContract } from './isolation-contract.ts'
import { startHono } from './servers.ts'

describeHttpContract('Hono', startHono, postgresHttp)
describeIsolationContract('Hono', startHono, postgresHttp)
