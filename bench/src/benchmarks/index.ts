/**
 * The benchmarks, by name, in the order a full run executes them. Each is loaded on demand so a
 * worker only loads the module of the benchmark it runs.
 */
import type { Benchmark } from "../harness.ts"

export const benchmarks: Record<string, () => Promise<Benchmark>> = {
  codec: async () => (await import("./codec.ts")).benchmark,
  B1: async () => (await import("./B1.ts")).benchmark,
  B2: async () => (await import("./B2.ts")).benchmark,
  B3: async () => (await import("./B3.ts")).benchmark,
  B4: async () => (await import("./B4.ts")).benchmark,
  B4b: async () => (await import("./B4b.ts")).benchmark,
  B5: async () => (await import("./B5.ts")).benchmark,
  Pipe: async () => (await import("./Pipe.ts")).benchmark,
  CopyMemory: async () => (await import("./CopyMemory.ts")).benchmark,
  B6: async () => (await import("./B6.ts")).benchmark,
  sqlclient: async () => (await import("./sqlclient.ts")).benchmark
}

export const benchmarkNames = Object.keys(benchmarks)

/** Case-insensitive lookup ("b1" finds "B1"). */
export const findBenchmark = (name: string): string | undefined =>
  benchmarkNames.find((n) => n.toLowerCase() === name.toLowerCase())
