// `mend dev run --reload restart`: the baseline of the hotfix benchmark. A restart must
// retry failing tasks at once on the new build, as a swap does, or the benchmark would
// compare a swap with a runtime that waits out the task's backoff.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { ExternalContext } from "mend";
import { Account } from "../fixtures/bank/src/api.js";
import { copyFixture } from "./helpers/cli.js";
import { DevRun } from "./helpers/dev.js";

test("--reload restart starts a new runtime on the fix and retries the failing task at once", async () => {
  const app = copyFixture("bank");
  const dev = new DevRun(app, ["--name", "restart", "--reload", "restart"]);
  const url = await dev.url();
  await dev.until(/v1 ready in \d+ ms/);
  const before = ((await (await fetch(`${url}/health`)).json()) as { pid: number }).pid;
  const { task } = await Account.ref("carol").spawn().statement(new ExternalContext({ url }));
  // The statement retries once a minute: only an immediate retry finishes it within the test.
  await dev.until(/✗ Account\('carol'\)\.statement \[[\w-]+\] failed on v1 \(attempt 1\).*retry in 60\.0 s/);
  const format = join(app, "src/format.ts");
  writeFileSync(format, readFileSync(format, "utf8").replace("SYMBOLS[currency]", "SYMBOLS[currency.toUpperCase()]"));
  await dev.until(/v\d ready in \d+ ms \(src\/format\.ts\) — retrying 1 failing task/);
  await dev.until(/✓ Account\('carol'\)\.statement \[[\w-]+\] completed on v\d \(attempt 2\)/);
  expect(await task).toEqual({ text: "Monthly statement for carol. Balance: $0.00" });
  const after = ((await (await fetch(`${url}/health`)).json()) as { pid: number }).pid;
  expect(after).not.toBe(before);
});
