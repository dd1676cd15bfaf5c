import type { IdempotencyPolicy } from './policy.ts'

/** `(handler)` or `(policy, handler)`, as every adapter's route function accepts them. */
export function routeArguments<H>(args: [H] | [IdempotencyPolicy, H]): [IdempotencyPolicy, H] {
  return args.length === 1 ? [{}, args[0]] : args
}
