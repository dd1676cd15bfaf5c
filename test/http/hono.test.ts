import { describeHttpContract } from './contract.ts'
import { startHono } from './servers.ts'

describeHttpContract('Hono', startHono)
