// `npm start`: the payments service for curl, on port 3000 (PORT to change it). Ctrl-C stops it.
import { exitOnSetupError } from '../../tools/postgres-process.ts'
import { stopOnSignal } from '../../tools/stop-on-signal.ts'
import { startPaymentsService } from './service.ts'

const service = await startPaymentsService(Number(process.env.PORT ?? 3000)).catch(exitOnSetupError)
console.log(`payments service on ${service.url} (PostgreSQL: ${service.postgres}); Ctrl-C to stop`)
console.log(`API key of a client made for you (send it as X-API-Key): ${service.apiKey}`)
stopOnSignal(() => service.stop())
