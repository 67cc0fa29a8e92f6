import type { Command } from "commander";
import { copyStore } from "../store/copy.js";
import { describeUrl, isPostgresUrl } from "../store/pg-open.js";

/** A store as a message names it: a file as given, a URL without its password. */
function named(store: string): string {
  return isPostgresUrl(store) ? describeUrl(store) : store;
}

export function registerStoreCommands(program: Command): void {
  const store = program.command("store").description("move a store's tasks and state");
  store
    .command("copy")
    .description("copy every task, state, workflow step, version and idempotency record of a store into an empty one (SQLite file ↔ PostgreSQL)")
    .requiredOption("--from <store>", "the store to copy: an SQLite file (.mend/NAME/mend.sqlite) or postgresql://user@host/db")
    .requiredOption("--to <store>", "an empty store to copy into: an SQLite file (created if missing) or postgresql://user@host/db")
    .action(async (o: { from: string; to: string }) => {
      const n = await copyStore(o.from, o.to);
      const count = (k: number, one: string, many = `${one}s`) => `${k.toLocaleString("en-US")} ${k === 1 ? one : many}`;
      console.log(
        `Copied ${count(n.tasks, "task")} (${count(n.attempts, "attempt")}, ${count(n.memos, "workflow step")}), ${count(n.states, "state")}, ` +
          `${count(n.versions, "version")}, ${count(n.idempotency, "idempotency record")} and ${count(n.task_history, "history entry", "history entries")} from ${named(o.from)} to ${named(o.to)}.`,
      );
    });
}
