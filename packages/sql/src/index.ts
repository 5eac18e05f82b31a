export * as Compiler from "./Compiler.ts"
export * as Errors from "./Errors.ts"
export * as PgClient from "./PgClient.ts"
export * as TypedQuery from "./TypedQuery.ts"
