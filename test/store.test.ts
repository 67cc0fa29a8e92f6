import Database from "better-sqlite3";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isMainThread } from "node:worker_threads";
import { expect, test } from "vitest";
import { Runtime, StoreError } from "mend";
import bank from "../fixtures/bank/src/main.js";
import { Account } from "../fixtures/bank/src/api.js";
import { MIGRATIONS } from "../src/store/migrations.js";
import { start } from "./helpers/runtimes.js";
import { tempDir } from "./helpers/temp.js";

function refuses(path: string, message: RegExp) {
  const before = readFileSync(path);
  return expect(Runtime.start(bank, { path }))
    .rejects.toThrow(message)
    .then(() => expect(readFileSync(path).equals(before)).toBe(true));
}

test("a file that is not an SQLite database is refused and left untouched", async () => {
  const path = join(tempDir(), "mend.sqlite");
  writeFileSync(path, "this is a text file, not a database\n".repeat(40));
  await refuses(path, /is not a mend store \(not an SQLite database, or truncated\); it was left untouched/);
});

test("an SQLite database of another application is refused and left untouched", async () => {
  const path = join(tempDir(), "other.sqlite");
  const db = new Database(path);
  db.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me')");
  db.close();
  await refuses(path, /is an SQLite database but not a mend store; it was left untouched/);
});

test("a truncated store is refused and left untouched", async () => {
  const dir = tempDir();
  const rt = await Runtime.start(bank, { directory: dir });
  await Account.ref("alice").deposit(rt.context(), { amount: 1 });
  await rt.stop();
  const path = join(dir, "mend.sqlite");
  writeFileSync(path, readFileSync(path).subarray(0, 300));
  await refuses(path, /not a mend store \(not an SQLite database, or truncated\)/);
});

test("a damaged store is refused with a clear error", async () => {
  const dir = tempDir();
  const rt = await Runtime.start(bank, { directory: dir });
  await Account.ref("alice").deposit(rt.context(), { amount: 1 });
  await rt.stop();
  const path = join(dir, "mend.sqlite");
  const bytes = readFileSync(path);
  // Keep the header, scribble over the schema page.
  bytes.fill(0xab, 100, 4096);
  writeFileSync(path, bytes);
  await refuses(path, /The store .* is damaged \(.*\); it was left untouched/);
});

test("a store written by a newer schema version is refused and left untouched", async () => {
  const dir = tempDir();
  const rt = await Runtime.start(bank, { directory: dir });
  await rt.stop();
  const path = join(dir, "mend.sqlite");
  const db = new Database(path);
  db.pragma("user_version = 99");
  db.close();
  await refuses(path, new RegExp(`has schema version 99, written by a newer mend \\(this one knows up to ${MIGRATIONS.length}\\)`));
});

test("a store whose folder cannot be created (its parent is a file) gives a clear error", async () => {
  const file = join(tempDir(), "file");
  writeFileSync(file, "");
  await expect(Runtime.start(bank, { path: join(file, "mend.sqlite") })).rejects.toThrow(/Cannot create the folder of the store .*EEXIST/);
});

// seteuid is a process-wide switch: not available in a worker thread (Stryker runs tests in threads).
test.skipIf(!isMainThread)("a store in a read-only folder gives a clear error and creates nothing", async () => {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  const readOnly = join(dir, "ro");
  mkdirSync(readOnly);
  chmodSync(readOnly, 0o555);
  const path = join(readOnly, "mend.sqlite");
  // Root ignores file modes: open the store as an unprivileged user then (the opening is synchronous).
  const root = process.getuid?.() === 0;
  if (root) process.seteuid!(65534);
  let opening: Promise<unknown>;
  try {
    opening = Runtime.start(bank, { path });
  } finally {
    if (root) process.seteuid!(0);
  }
  await expect(opening).rejects.toThrow(new RegExp(`^Cannot (write|open) the store ${path.replaceAll(".", "\\.")}`));
  await expect(opening).rejects.toBeInstanceOf(StoreError);
  expect(existsSync(path)).toBe(false);
});

test("the store runs with synchronous=FULL by default, NORMAL when asked", async () => {
  const full = await start(bank);
  expect(full.synchronous).toBe("FULL");
  const normal = await start(bank, { synchronous: "NORMAL" });
  expect(normal.synchronous).toBe("NORMAL");
});

test("reopening applies no migration twice and keeps the data", async () => {
  const dir = tempDir();
  const first = await Runtime.start(bank, { directory: dir });
  await Account.ref("alice").deposit(first.context(), { amount: 3 });
  await first.stop();
  const rt = await start(bank, { directory: dir });
  expect(await Account.ref("alice").balance(rt.context())).toEqual({ balance: 3 });
});

test.each(["deleted", "replaced"] as const)("a store file %s under a running runtime refuses every later write, saying so", async (what) => {
  const dir = tempDir();
  const rt = await start(bank, { directory: dir });
  const ctx = rt.context();
  await Account.ref("alice").deposit(ctx, { amount: 3 });
  if (what === "deleted") rmSync(rt.path);
  else {
    writeFileSync(join(dir, "other"), "");
    renameSync(join(dir, "other"), rt.path);
  }
  const refusal = new RegExp(`The store file .*mend\\.sqlite was ${what} while this runtime had it open; no write is accepted any more`);
  await expect(Account.ref("alice").deposit(ctx, { amount: 1 })).rejects.toThrow(refusal);
  await expect(Account.ref("bob").spawn().welcomeEmail(ctx)).rejects.toThrow(refusal);
});
