// `npm run start:billing`: the billing service for curl, on port 3001 (PORT to change it). Ctrl-C stops it.
import { exitOnSetupError } from '../../tools/postgres-process.ts'
import { stopOnSignal } from '../../tools/stop-on-signal.ts'
import { startBillingService } from './service.ts'

const service = await startBillingService(Number(process.env.PORT ?? 3001)).catch(exitOnSetupError)
console.log(`billing service on ${service.url} (PostgreSQL: ${service.postgres}); Ctrl-C to stop`)
console.log(`API key of a client made for you (send it as X-API-Key): ${service.apiKey}`)
stopOnSignal(() => service.stop())
