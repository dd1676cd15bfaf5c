// The HTTP contract and the isolation contract (customers, SERIALIZABLE and REPEATABLE READ
// routes) on Fastify with a data layer other than kysely.
import { prismaHttp } from './contract-layers.ts'
import { describeHttpContract } from './contract.ts'
import { describeIsolationContract } from './isolation-contract.ts'
import { startFastify } from './servers.ts'

describeHttpContract('Fastify', startFastify, prismaHttp)
describeIsolationContract('Fastify', startFastify, prismaHttp)
