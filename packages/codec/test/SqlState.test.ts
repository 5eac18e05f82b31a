import { describe, it } from "@effect/vitest"
import * as NodeAssert from "node:assert/strict"
import { allSqlStates, isRetryable, SqlState, SqlStateClasses, sqlStateClass, sqlStateInfo } from "../src/SqlState.ts"

describe("SqlState (generated)", () => {
  it("has every code with its class", () => {
    NodeAssert.ok(allSqlStates.length > 250)
    NodeAssert.equal(SqlState.unique_violation, "23505")
    NodeAssert.equal(SqlState.serialization_failure, "40001")
    NodeAssert.equal(SqlState.undefined_cursor, "34000") // an alias listed under class 42
    const info = sqlStateInfo("23505")!
    NodeAssert.equal(info.name, "unique_violation")
    NodeAssert.equal(info.condition, "unique_violation")
    NodeAssert.equal(info.className, "Integrity Constraint Violation")
    NodeAssert.equal(info.severity, "E")
    NodeAssert.equal(sqlStateInfo("01004")!.severity, "W")
    for (const s of allSqlStates) NodeAssert.equal(SqlStateClasses[s.code.slice(0, 2)]!.code, s.classCode)
  })

  it("unknown codes fall back to their class", () => {
    const info = sqlStateInfo("23999")!
    NodeAssert.equal(info.name, undefined)
    NodeAssert.equal(info.classCode, "23")
    NodeAssert.equal(info.className, "Integrity Constraint Violation")
    NodeAssert.equal(sqlStateInfo("ZZ000"), undefined)
    NodeAssert.equal(sqlStateClass("08006")!.name, "Connection Exception")
  })

  it("isRetryable", () => {
    for (const c of ["40001", "40P01", "08000", "08006", "57P01", "57P02", "57P03", "53300"]) NodeAssert.equal(isRetryable(c), true, c)
    for (const c of ["23505", "40002", "57014", "42601", "XX000", "53100"]) NodeAssert.equal(isRetryable(c), false, c)
  })
})
