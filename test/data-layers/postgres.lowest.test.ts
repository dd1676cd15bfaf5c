// The lowest postgres.js the peer range allows (postgres-lowest is an npm alias of it).
import type { Sql } from 'postgres'
import postgres from 'postgres-lowest'
import { runDataLayerContract } from './contract.ts'
import { postgresLayer } from './postgres-layer.ts'

runDataLayerContract(postgresLayer('postgres.js (lowest)', (url, options) => postgres(url, { ...options, onnotice: () => {} }) as unknown as Sql))
