// The lowest node-postgres the peer range allows (pg-lowest is an npm alias of it): a client that
// does not report its transaction status, so the refusal's LOCK TABLE check runs.
import pg from 'pg-lowest'
import { runDataLayerContract } from './contract.ts'
import { pgLayer } from './pg-layer.ts'

runDataLayerContract(pgLayer('node-postgres (lowest)', pg.Pool))
