import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { PrismaClient } from './generated/client.ts'
const url = 'postgres://postgres@127.0.0.1:5432/prisma_scratch'
const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) })
function dump(label: string, e: any) {
  console.log('==', label, e?.constructor?.name, 'code=', e?.code)
  console.log('message:', String(e?.message).slice(-200))
  console.log('meta:', JSON.stringify(e?.meta), 'cause:', e?.cause)
}
const admin = new pg.Client(url); await admin.connect()
await prisma.$transaction(async (tx) => { console.log('tx.$connect', typeof (tx as any).$connect, typeof (prisma as any).$connect, typeof (tx as any).$disconnect) })
try {
  await prisma.$transaction(async (tx) => {
    const [{ pid }] = await tx.$queryRawUnsafe<any[]>('select pg_backend_pid()::text as pid')
    setTimeout(() => admin.query('select pg_terminate_backend($1::int)', [pid]), 300)
    await tx.$queryRawUnsafe(`select pg_sleep(2)::text`)
  })
} catch (e) { dump('terminated mid-query', e) }
try {
  await prisma.$transaction(async (tx) => {
    const [{ pid }] = await tx.$queryRawUnsafe<any[]>('select pg_backend_pid()::text as pid')
    await admin.query('select pg_terminate_backend($1::int)', [pid])
    await new Promise(r => setTimeout(r, 200))
    await tx.$queryRawUnsafe(`select 1::text`)
  })
} catch (e) { dump('dead before query', e) }
try {
  await prisma.$transaction(async (tx) => { await tx.$queryRawUnsafe(`select pg_sleep(1)::text`) }, { timeout: 300 })
} catch (e) { dump('timeout', e) }
await admin.query('begin'); await admin.query('select pg_advisory_xact_lock(42)')
try {
  await prisma.$transaction(async (tx) => { await tx.$queryRawUnsafe(`set local lock_timeout = 1500`); await tx.$queryRawUnsafe(`select pg_advisory_xact_lock(42)::text`) }, { timeout: 500 })
} catch (e) { dump('timeout during lock wait', e) }
await admin.query('commit')
try {
  await prisma.$transaction(async (tx) => { throw new Error('mine') })
} catch (e) { dump('fn error', e) }
await prisma.$disconnect(); await admin.end()
