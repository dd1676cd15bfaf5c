import { describeHostileCorpus } from './describe-corpus.ts'

describeHostileCorpus('hono')
