import knex from 'knex'
import { runDataLayerContract } from './contract.ts'
import { knexLayer } from './knex-layer.ts'

runDataLayerContract(knexLayer('knex (pinned)', (config) => knex(config)))
