export * as Commands from "./Commands.ts"
export * as Lsn from "./Lsn.ts"
export * as ReplicationStream from "./ReplicationStream.ts"
