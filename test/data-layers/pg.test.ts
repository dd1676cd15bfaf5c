import pg from 'pg'
import { runDataLayerContract } from './contract.ts'
import { pgLayer } from './pg-layer.ts'

runDataLayerContract(pgLayer('node-postgres (pinned)', pg.Pool))
