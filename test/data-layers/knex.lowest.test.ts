// The lowest Knex the peer range allows (knex-lowest is an npm alias of it).
import type { Knex } from 'knex'
import { knex } from 'knex-lowest'
import { runDataLayerContract } from './contract.ts'
import { knexLayer } from './knex-layer.ts'

runDataLayerContract(knexLayer('knex (lowest)', (config) => knex(config as never) as unknown as Knex))
