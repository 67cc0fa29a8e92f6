// Stores the runtime cannot use as they are: a path that is a folder, a read-only file
// system, a disk that fills. Each is a clear error, and the data already stored is kept.
// (Garbage, truncated, damaged, foreign and newer-schema files are in store.test.ts.)
import Database from "better-sqlite3";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { Application, Runtime, StoreError, startServer, type RuntimeOptions, type TaskId } from "mend";
import bank from "../fixtures/bank/src/main.js";
import { Account } from "../fixtures/bank/src/api.js";
import { CounterServicer, Job, jobServicer } from "./apps/flaky.js";
import { next } from "./helpers/runtimes.js";
import { copyFixture, mend } from "./helpers/cli.js";
import { smallDisk, unmountDisks } from "./helpers/disk.js";
import { tempDir } from "./helpers/temp.js";

const runtimes: Runtime[] = [];
// Runs before the hooks of helpers/temp.ts (hooks run in reverse order): stop, then unmount, then the folders go.
afterEach(async () => {
  for (const rt of runtimes.splice(0)) await rt.stop({ graceMs: 0 });
  unmountDisks();
});

async function start(app: Application, options: RuntimeOptions): Promise<Runtime> {
  const rt = await Runtime.start(app, options);
  runtimes.push(rt);
  return rt;
}


/** Fills the disk of `dir` with files until a write fails; returns a function that frees the space. */
function fill(dir: string): () => void {
  const files: string[] = [];
  try {
    for (let i = 0; ; i++) {
      const file = join(dir, `filler-${i}`);
      files.push(file);
      writeFileSync(file, Buffer.alloc(4096, 1));
    }
  } catch (e) {
    expect((e as { code?: string }).code).toBe("ENOSPC");
  }
  return () => {
    for (const file of files) rmSync(file, { force: true });
  };
}

function integrity(path: string): unknown {
  const db = new Database(path);
  try {
    return db.pragma("integrity_check", { simple: true });
  } finally {
    db.close();
  }
}

test("a store path that is a folder is refused with a clear error", async () => {
  const path = join(tempDir(), "mend.sqlite");
  mkdirSync(path);
  const error = await Runtime.start(bank, { path }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(StoreError);
  expect((error as Error).message).toBe(`${path} is not a mend store (not a file); it was left untouched.`);
});

test("a store on a read-only file system is refused with a clear error and left untouched", async (ctx) => {
  const disk = smallDisk(1024);
  if (!disk) return ctx.skip();
  const first = await start(bank, { directory: disk });
  await Account.ref("alice").deposit(first.context(), { amount: 3 });
  await first.stop();
  execFileSync("mount", ["-o", "remount,ro", disk]);
  const path = join(disk, "mend.sqlite");
  const before = readFileSync(path);
  const error = await Runtime.start(bank, { directory: disk }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(StoreError);
  expect((error as Error).message).toMatch(new RegExp(`^Cannot write the store ${path}: `));
  expect(readFileSync(path).equals(before)).toBe(true);
});

test("a new store on a full disk is refused with a clear error", async (ctx) => {
  const disk = smallDisk(256);
  if (!disk) return ctx.skip();
  fill(disk);
  const path = join(disk, "app", "mend.sqlite");
  await expect(Runtime.start(bank, { path })).rejects.toThrow(`Cannot write the store ${path}: the disk is full.`);
});

test("over HTTP, a write on a full disk is a 507 that says the disk is full, and works again once there is room", async (ctx) => {
  const disk = smallDisk(256);
  if (!disk) return ctx.skip();
  const rt = await start(bank, { directory: disk });
  const server = await startServer(rt, { port: 0 });
  try {
    const post = async (path: string, body: unknown) => {
      const response = await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: response.status, body: (await response.json()) as { error?: { code: string; message: string; stack?: string } } };
    };
    const deposit = { stateType: "Account", stateId: "alice", method: "deposit", request: { amount: 1 } };
    const free = fill(disk);
    const full = { status: 507, body: { error: { code: "DISK_FULL", message: "The disk is full: nothing was written. Free some space and try again." } } };
    expect(await post("/v1/call", deposit)).toEqual(full);
    expect(await post("/v1/tasks", deposit)).toEqual(full);
    free();
    expect(await post("/v1/call", deposit)).toEqual({ status: 200, body: { outcome: { status: "COMPLETED", response: { balance: 1 } } } });
  } finally {
    await server.close();
  }
});

test("mend serve on a read-only or a full disk says so in one line", async (ctx) => {
  const readOnly = smallDisk(256);
  const full = smallDisk(256);
  if (!readOnly || !full) return ctx.skip();
  execFileSync("mount", ["-o", "remount,ro", readOnly]);
  fill(full);
  const app = copyFixture("bank");
  const args = ["serve", "--application", "src/main.ts", "--name", "x", "--port", "0", "--state-directory"];
  const ro = await mend([...args, readOnly], { cwd: app });
  expect([ro.exitCode, ro.stderr]).toEqual([
    1,
    `mend: Cannot write the state folder ${join(readOnly, ".mend", "x")}: the file system is read-only. Pass --state-directory with a folder you can write.`,
  ]);
  const noRoom = await mend([...args, full], { cwd: app });
  expect(noRoom.exitCode).toBe(1);
  expect(noRoom.stderr).toMatch(new RegExp(`^mend: Cannot write the (build of the application to ${join(full, ".mend", "x", "build")}/\\d+|store ${join(full, ".mend", "x", "mend.sqlite")}): the disk is full\\.$`));
});

test("when the disk fills, writes fail with a clear error, what is stored stays, and all works again once there is room", async (ctx) => {
  // Room for the store, its write-ahead log of this test's writes, and its checkpoint at close.
  const disk = smallDisk(512);
  if (!disk) return ctx.skip();
  const rt = await start(bank, { directory: disk });
  const c = rt.context();
  await Account.ref("alice").deposit(c, { amount: 5 });
  const { task: before } = await Account.ref("alice").spawn({ when: { hours: 1 } }).welcomeEmail(c);

  const free = fill(disk);
  const full = /database or disk is full/;
  await expect(Account.ref("alice").deposit(c, { amount: 1 })).rejects.toThrow(full);
  await expect(Account.ref("bob").deposit(c, { amount: 1 })).rejects.toMatchObject({ code: "SQLITE_FULL" });
  await expect(Account.ref("alice").spawn().welcomeEmail(c)).rejects.toThrow(full);
  // What was stored before is untouched and readable.
  expect(await Account.ref("alice").balance(c)).toEqual({ balance: 5 });
  expect((await rt.getTask(before.taskId.taskUuid)).task.status).toBe("SCHEDULED");
  expect(await rt.listTasks({ limit: 10 })).toHaveLength(1);

  free();
  expect(await Account.ref("alice").deposit(c, { amount: 1 })).toEqual({ balance: 6 });
  expect(await Account.ref("bob").balance(c)).toEqual({ balance: 0 });
  const { task } = await Account.ref("alice").spawn().welcomeEmail(c);
  expect(await task).toEqual({ sent: true });
  await rt.stop();

  expect(integrity(join(disk, "mend.sqlite"))).toBe("ok");
  const again = await start(bank, { directory: disk });
  expect(await Account.ref("alice").balance(again.context())).toEqual({ balance: 6 });
});

test("a writer task whose commit meets a full disk is retried, and applies its change once there is room", async (ctx) => {
  const disk = smallDisk(256);
  if (!disk) return ctx.skip();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const app = new Application({
    servicers: [jobServicer((attempt) => (attempt === 1 ? gate : undefined)), CounterServicer],
    retry: { initialMs: 20, maxMs: 100 },
  });
  const rt = await start(app, { directory: disk });
  const storeErrors: unknown[] = [];
  rt.on("store:error", ({ error }) => storeErrors.push(error));
  const started = next(rt, "attempt:start");
  const { task } = await Job.ref("j").spawn().work(rt.context(), { label: "once" });
  await started;

  const free = fill(disk);
  const failed = next<{ taskId: TaskId; outcome: string; error?: Error }>(rt, "attempt:end");
  release();
  // The change and the task's completion could not be written: the attempt failed, nothing was applied.
  expect(await failed).toMatchObject({ outcome: "FAILED", error: { message: expect.stringMatching(/database or disk is full/) } });
  expect(await Job.ref("j").get(rt.context())).toEqual({ runs: 0, log: [] });

  free();
  expect(await task).toEqual({ runs: 1 });
  expect(await Job.ref("j").get(rt.context())).toEqual({ runs: 1, log: ["once"] });
  expect(storeErrors.length).toBeGreaterThan(0);
  const { task: info, attempts } = await rt.getTask(task.taskId.taskUuid);
  expect(info.status).toBe("COMPLETED");
  expect(attempts.filter((a) => a.outcome === "COMPLETED")).toHaveLength(1);
});
