import { generatePrismaClient } from './generate-client.ts'

/** vitest globalSetup: the Prisma tests' client exists before any test file imports it. */
export default async function setup() {
  const { generated, milliseconds } = await generatePrismaClient()
  if (generated) console.log(`Prisma client for the tests generated in ${Math.round(milliseconds)} ms`)
}
