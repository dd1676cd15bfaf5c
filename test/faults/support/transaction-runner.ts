// How the fault suite's requests run their transaction: through the library's runTransaction
// when it has one (issue 12, item 11: it keeps the typed error when kysely's ROLLBACK fails on
// a dead connection), else through kysely's own execute, whose failed ROLLBACK replaces it.
import type { Transaction, TransactionBuilder } from 'kysely'
import * as library from '../../../src/index.ts'

type Runner = <T>(builder: TransactionBuilder<any>, fn: (tx: Transaction<any>) => Promise<T>) => Promise<T>

const fromLibrary = (library as Record<string, unknown>).runTransaction as Runner | undefined

export const runTransaction: Runner = fromLibrary ?? ((builder, fn) => builder.execute(fn))
