import type { Command } from "commander";

export function registerDevCommands(program: Command): void {
  program.command("dev").description("develop an application: rebuild on save, hot-swap code, retry failing tasks");
}
