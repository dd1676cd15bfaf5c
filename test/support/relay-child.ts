// A relay in a process of its own, for the crash test: it publishes to a Redis stream and, after
// `hangAfter` events of its batch, says so on stdout and hangs before marking them delivered, so
// the test can kill it between publish and acknowledgement.
import { createClient } from 'redis'
import { createOutboxRelay } from '../../src/outbox/index.ts'
import { redisStreamsPublisher } from '../../src/outbox/publishers/redis-streams.ts'
import { connect } from '../../tools/databases.ts'

const [databaseUrl, stream, hangAfterText] = process.argv.slice(2)
const hangAfter = Number(hangAfterText)
const redis = createClient({ url: 'redis://127.0.0.1:6379' })
await redis.connect()
const publisher = redisStreamsPublisher(redis, { stream: () => stream! })
let published = 0
const relay = createOutboxRelay({
  db: connect(databaseUrl!, 2),
  batchSize: 1000,
  publishers: {
    '*': {
      async publish(event) {
        await publisher.publish(event)
        if (++published === hangAfter) {
          process.stdout.write(`published ${published}\n`)
          await new Promise(() => {})
        }
      },
    },
  },
})
await relay.runOnce()
