import { Effect } from "effect"
import { Command } from "effect/cli"
export const command = Command.make("cdc", {}, () => Effect.void)
