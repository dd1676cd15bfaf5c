import postgres from 'postgres'
import { runDataLayerContract } from './contract.ts'
import { postgresLayer } from './postgres-layer.ts'

runDataLayerContract(postgresLayer('postgres.js (pinned)', (url, options) => postgres(url, { ...options, onnotice: () => {} })))
