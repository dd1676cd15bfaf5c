// The framework-agnostic HTTP core, shared by the adapters under their own subpaths.
export { handleIdempotentRequest, REPLAYED_HEADER } from './handle-request.ts'
export { resolvePolicy, type IdempotencyPolicy, type IdempotencyHttpOptions, type HttpMismatchHandler, type ResolvedPolicy } from './policy.ts'
export { ProblemType, PROBLEM_CONTENT_TYPE, DEFAULT_PROBLEM_TYPE_BASE, problemFromError } from './problem.ts'
export { readKeyHeader } from './key-header.ts'
export { httpScope, clientDigest, type HttpScopeParts } from './scope.ts'
export { IdempotencyRequestBodyError } from '../errors.ts'
export type { RequestBody } from './request-body.ts'
export type { HandlerResult, HandlerContext, HttpRequest, HttpResponse, IdempotentHandler } from './types.ts'
