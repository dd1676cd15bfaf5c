import { describeIsolationContract } from './isolation-contract.ts'
import { startFastify } from './servers.ts'

describeIsolationContract('Fastify', startFastify)
