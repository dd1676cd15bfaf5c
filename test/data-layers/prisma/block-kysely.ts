// `node --import` hooks for a process that must run as a Prisma user's would, with no kysely
// installed: resolving kysely fails as a missing package does.
import { registerHooks } from 'node:module'

const FORBIDDEN = [/^kysely(\/|$)/, /\/node_modules\/kysely\//]

registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context)
    const hit = FORBIDDEN.find((pattern) => pattern.test(specifier) || pattern.test(resolved.url))
    if (hit !== undefined) {
      throw Object.assign(new Error(`Cannot find package '${specifier}' (blocked: a Prisma user has no kysely), imported from ${context.parentURL}`), {
        code: 'ERR_MODULE_NOT_FOUND',
      })
    }
    return resolved
  },
})
