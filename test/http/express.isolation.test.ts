import { describeIsolationContract } from './isolation-contract.ts'
import { startExpress } from './servers.ts'

describeIsolationContract('Express', startExpress)
