// The HTTP contract and the isolation contract (customers, SERIALIZABLE and REPEATABLE READ
// routes) on Express with a data layer other than kysely.
import { drizzleHttp } from './contract-layers.ts'
import { describeHttpContract } from './contract.ts'
import { describeIsolationContract } from './isolation-contract.ts'
import { startExpress } from './servers.ts'

describeHttpContract('Express', startExpress, drizzleHttp)
describeIsolationContract('Express', startExpress, drizzleHttp)
