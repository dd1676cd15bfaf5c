import { fingerprintBody } from '../src/http/body-fingerprint.ts'
import { ignoredFieldsOf } from '../src/canonical-json.ts'
const rules = { maxBodyBytes: 1 << 24, maxBodyDepth: 100, ignoredFields: ignoredFieldsOf([['a']]) }
for (let r = 0; r < 2; r++)
for (const [name, text] of [
  ['500k numbers', '[' + '0,'.repeat(500_000) + '0]'],
  ['1M numbers', '[' + '0,'.repeat(1_000_000) + '0]'],
  ['250k decimals', '[' + '-1.5e+3,'.repeat(250_000) + '0]'],
  ['object 100k members', '{' + Array.from({ length: 100_000 }, (_, i) => `"k${i}":${i}`).join(',') + '}'],
  ['string escapes 1MB', '"' + '\\n'.repeat(500_000) + '"'],
  ['short strings 1MB', '[' + '"ab",'.repeat(200_000) + '""]'],
] as const) {
  const bytes = Buffer.from(text)
  const t = performance.now()
  fingerprintBody({ bytes, contentType: 'application/json' }, rules)
  console.log(name, (bytes.length / 1e6).toFixed(2), 'MB', (performance.now() - t).toFixed(0), 'ms')
}
