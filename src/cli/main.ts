#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { MendError } from "../api/errors.js";
import { isDiskFull } from "../store/open.js";
import { registerInit } from "./init.js";
import { registerServe } from "./serve.js";
import { registerStoreCommands } from "./store.js";
import { registerTaskCommands } from "./task.js";
import { registerDevCommands } from "../../dev/commands.js";

const program = new Command("mend")
  .description("Durable tasks for TypeScript that you fix by saving.")
  .version("0.1.0")
  .showSuggestionAfterError()
  .exitOverride()
  .configureOutput({ outputError: (text, write) => write(`mend: ${text.replace(/^error: /, "")}`) });

registerInit(program);
registerServe(program);
registerTaskCommands(program);
registerStoreCommands(program);
registerDevCommands(program);
for (const cmd of program.commands) {
  cmd.exitOverride();
  for (const sub of cmd.commands) sub.exitOverride();
}

try {
  await program.parseAsync();
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  // Errors we expect (bad input, unreachable server, a refused store) are one line, never a stack.
  const message = e instanceof Error ? e.message : String(e);
  const known = typeof (e as { code?: unknown })?.code === "string" || (e as Error)?.name === "BuildFailed";
  if (isDiskFull(e) && !(e instanceof MendError)) console.error("mend: the disk is full; free some space and try again.");
  else console.error(known ? `mend: ${message}` : `mend: unexpected error: ${(e as Error)?.stack ?? message}`);
  process.exit(1);
}
