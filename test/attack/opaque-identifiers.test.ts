import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createCustomer, IdempotencyErrorCode } from '../../src/index.ts'
import { useTestDatabase } from '../support/test-database.ts'

// The customers page asks for an opaque reference as the identifier. Random hex is the most common
// one, and about 1 in 100 32-digit hex strings holds two letters, six digits and a letter A-D, the
// shape of a UK National Insurance number, inside a longer run of letters and digits.
const database = useTestDatabase()

const create = (identifier: string) =>
  database.db.transaction().execute((tx) => createCustomer(tx, { clientId: 'client-opaque', idempotentIdentifier: identifier }))

describe('opaque identifiers are not personal data', () => {
  it.each(['1ec463274c02e27b0a2f9ecdea22c1d3', '49aa970599c7448b', 'other-1xe535239b'])('creates the customer %s', async (identifier) => {
    const { created } = await create(identifier)
    expect(created).toBe(true)
  })

  it('creates a thousand customers with random 32-digit hex identifiers', async () => {
    const refused: string[] = []
    for (let i = 0; i < 1000; i++) {
      const identifier = randomBytes(16).toString('hex')
      await create(identifier).catch((error: { code?: string }) => {
        if (error.code !== IdempotencyErrorCode.CUSTOMER_IDENTIFIER_PERSONAL_DATA) throw error
        refused.push(identifier)
      })
    }
    expect(refused).toEqual([])
  })

  it.each(['AB123456C', 'ab 12 34 56 c', 'user-AB123456C', 'nino:AB 12 34 56 C'])('still refuses the National Insurance number in %s', async (identifier) => {
    await expect(create(identifier)).rejects.toMatchObject({ code: IdempotencyErrorCode.CUSTOMER_IDENTIFIER_PERSONAL_DATA, httpStatus: 400 })
  })
})
