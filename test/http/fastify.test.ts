import { describeHttpContract } from './contract.ts'
import { startFastify } from './servers.ts'

describeHttpContract('Fastify', startFastify)
