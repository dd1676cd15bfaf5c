import { describeIsolationContract } from './isolation-contract.ts'
import { startHono } from './servers.ts'

describeIsolationContract('Hono', startHono)
