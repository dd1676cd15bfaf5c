import { describeHttpContract } from './contract.ts'
import { startExpress } from './servers.ts'

describeHttpContract('Express', startExpress)
