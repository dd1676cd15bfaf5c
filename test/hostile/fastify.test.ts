import { describeHostileCorpus } from './describe-corpus.ts'

describeHostileCorpus('fastify')
