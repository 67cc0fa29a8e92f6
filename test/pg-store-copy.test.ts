// `mend store copy`: a dev store's tasks and state move into PostgreSQL and back, and the
// runtime on the copy goes on where the original stopped. Drives the built CLI.
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { Runtime } from "mend";
import { Account } from "../fixtures/bank/src/api.js";
import bank from "../fixtures/bank/src/main.js";
import { mend } from "./helpers/cli.js";
import { start } from "./helpers/runtimes.js";
import { newSchemaUrl } from "./helpers/stores.js";
import { tempDir } from "./helpers/temp.js";

/** Everything a runtime shows of its tasks, for comparing a store with its copy. */
async function tasksOf(rt: Runtime) {
  const list = await rt.listTasks({ limit: 100 });
  return Promise.all(
    list.map(async (t) => {
      const { task, attempts } = await rt.getTask(t.taskId.taskUuid);
      const { cursor: _, ...rest } = task;
      return { ...rest, attempts };
    }),
  );
}

describe("mend store copy", () => {
  test("an SQLite store moves into PostgreSQL and back; the runtime on each copy goes on where the original stopped", async () => {
    const dir = tempDir();
    const file = join(dir, "mend.sqlite");
    const original = await Runtime.start(bank, { path: file });
    const ctx = original.context({ idempotencySeed: "copy-test" });
    await Account.ref("alice").idempotently("first").deposit(ctx, { amount: 10 });
    const { task: done } = await Account.ref("alice").spawn().welcomeEmail(ctx);
    await done;
    const { task: later } = await Account.ref("bob").spawn({ when: { hours: 1 } }).welcomeEmail(ctx);
    const before = await tasksOf(original);
    await original.stop();

    const url = await newSchemaUrl();
    const there = await mend(["store", "copy", "--from", file, "--to", url]);
    expect(there.stderr).toBe("");
    expect(there.exitCode).toBe(0);
    expect(there.stdout).toMatch(/^Copied 2 tasks \(1 attempt, \d+ workflow steps?\), 1 state, 1 version, 1 idempotency record and 0 history entries from .*mend\.sqlite to postgresql:\/\/mend@127\.0\.0\.1:\d+\/postgres\.$/);

    const onPg = await start(bank, { store: url });
    expect(await tasksOf(onPg)).toEqual(before);
    const again = onPg.context({ idempotencySeed: "copy-test" });
    // The recorded call answers again without running; the state is the one copied.
    expect(await Account.ref("alice").idempotently("first").deposit(again, { amount: 10 })).toEqual({ balance: 10 });
    expect(await Account.ref("alice").balance(again)).toEqual({ balance: 10 });
    expect(await onPg.retry(later.taskId.taskUuid)).toBe(true);
    expect(await Account.WelcomeEmailTask.retrieve(again, { taskId: later.taskId })).toEqual({ sent: true });
    const onPgTasks = await tasksOf(onPg);
    await onPg.stop();

    const back = join(tempDir(), "back.sqlite");
    const home = await mend(["store", "copy", "--from", url, "--to", back]);
    expect(home.exitCode).toBe(0);
    expect(home.stdout).toMatch(/^Copied 2 tasks \(2 attempts/);
    const onFile = await start(bank, { path: back });
    expect(await tasksOf(onFile)).toEqual(onPgTasks);
    expect(await Account.ref("alice").deposit(onFile.context(), { amount: 1 })).toEqual({ balance: 11 });
  });

  test("a target that holds anything is refused and left as it was", async () => {
    const dir = tempDir();
    const file = join(dir, "mend.sqlite");
    const first = await Runtime.start(bank, { path: file });
    await Account.ref("alice").deposit(first.context(), { amount: 5 });
    await first.stop();
    const url = await newSchemaUrl();
    const target = await start(bank, { store: url });
    await Account.ref("carol").deposit(target.context(), { amount: 7 });
    await target.stop();

    const refused = await mend(["store", "copy", "--from", file, "--to", url]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/^mend: The store postgresql:\/\/mend@127\.0\.0\.1:\d+\/postgres is not empty: a copy goes only into an empty store\. It was left as it was\.$/);
    const intoFile = await mend(["store", "copy", "--from", url, "--to", file]);
    expect(intoFile.exitCode).toBe(1);
    expect(intoFile.stderr).toMatch(/is not empty: a copy goes only into an empty store/);

    const rt = await start(bank, { store: url });
    expect(await Account.ref("carol").balance(rt.context())).toEqual({ balance: 7 });
    expect(await Account.ref("alice").balance(rt.context())).toEqual({ balance: 0 });
    await rt.stop();
    const onFile = await start(bank, { path: file });
    expect(await Account.ref("alice").balance(onFile.context())).toEqual({ balance: 5 });
    expect(await Account.ref("carol").balance(onFile.context())).toEqual({ balance: 0 });
  });

  test("a missing source, the same store twice, or a missing flag is one line", async () => {
    const missing = await mend(["store", "copy", "--from", join(tempDir(), "nope.sqlite"), "--to", join(tempDir(), "x.sqlite")]);
    expect([missing.exitCode, missing.stderr]).toEqual([1, expect.stringMatching(/^mend: There is no store .*nope\.sqlite to copy\.$/)]);
    const file = join(tempDir(), "a.sqlite");
    const same = await mend(["store", "copy", "--from", file, "--to", file]);
    expect([same.exitCode, same.stderr]).toEqual([1, "mend: The two stores are one."]);
    const flag = await mend(["store", "copy", "--from", file]);
    expect(flag.exitCode).toBe(1);
    expect(flag.stderr).toMatch(/^mend: required option '--to <store>' not specified$/);
  });
});
