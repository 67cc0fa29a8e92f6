// Issue 14 over HTTP: the same error classes and idempotency as in-process, through
// ExternalContext and raw requests to `mend serve`, across a restart of the server and from
// other processes; and authorizers in place of the admin secret beyond loopback.
import { cpSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, test } from "vitest";
import { ExternalContext, IdempotencyConflict, MethodFailed, PermissionDenied, StateAlreadyConstructed, StateNotConstructed } from "mend";
import { Cell, Guarded, Ledger, Tx } from "./apps/reboot/src/api.js";
import { serve } from "./helpers/cli.js";
import { tempDir } from "./helpers/temp.js";

const appSource = fileURLToPath(new URL("./apps/reboot", import.meta.url));
const clientScript = fileURLToPath(new URL("./helpers/client-script.mjs", import.meta.url));

function copyApp(): string {
  const dir = join(tempDir(), "reboot");
  cpSync(appSource, dir, { recursive: true });
  return dir;
}

function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) }).then(
    async (r) => ({ status: r.status, body: (await r.json()) as any }),
  );
}

describe("errors over HTTP", () => {
  test("constructors' errors, and declared errors through callers, revive as the same classes as in-process", async () => {
    const { url } = await serve(copyApp());
    const ctx = new ExternalContext({ url });
    await expect(Ledger.ref("ghost").total(ctx)).rejects.toBeInstanceOf(StateNotConstructed);
    const [ledger] = await Ledger.open(ctx, "l", { owner: "ann" });
    expect(await ledger.total(ctx)).toEqual({ owner: "ann", total: 0 });
    await expect(Ledger.open(ctx, "l", { owner: "eve" })).rejects.toBeInstanceOf(StateAlreadyConstructed);

    const passed = await Tx.ref("t").pass(ctx, { cells: ["a"] }).catch((e: unknown) => e);
    expect(passed).toBeInstanceOf(Tx.PassAborted);
    expect((passed as InstanceType<typeof Tx.PassAborted>).error).toEqual({ type: "Refused", by: "inner" });
    const unexpected = await Tx.ref("t").nopass(ctx, { cells: ["a"] }).catch((e: unknown) => e);
    expect(unexpected).toBeInstanceOf(MethodFailed);
    expect(unexpected).not.toBeInstanceOf(Tx.InnerAborted);
    expect((unexpected as MethodFailed).remoteName).toBe("InnerAborted");
    const raw = await post(url, "/v1/call", { stateType: "Tx", stateId: "t", method: "nopass", request: { cells: ["a"] } });
    expect([raw.status, raw.body.error.code]).toEqual([500, "METHOD_FAILED"]);
  });

  test("a declared error passed through a caller ends the task ABORTED with the caller's class, also after a restart", async () => {
    const dir = copyApp();
    const first = await serve(dir);
    const { task } = await Tx.ref("t").spawn().pass(new ExternalContext({ url: first.url }), { cells: ["a"] });
    await expect(task).rejects.toBeInstanceOf(Tx.PassAborted);
    const { task: ghost } = await Ledger.ref("ghost").spawn().add(new ExternalContext({ url: first.url }), { n: 1 });
    await expect(ghost).rejects.toBeInstanceOf(StateNotConstructed);
    first.child.kill("SIGTERM");
    await first.child;

    const second = await serve(dir);
    const ctx = new ExternalContext({ url: second.url });
    const revived = await Tx.PassTask.retrieve(ctx, { taskId: task.taskId }).then(undefined, (e: unknown) => e);
    expect(revived).toBeInstanceOf(Tx.PassAborted);
    expect((revived as InstanceType<typeof Tx.PassAborted>).error).toEqual({ type: "Refused", by: "inner" });
    await expect(Ledger.AddTask.retrieve(ctx, { taskId: ghost.taskId })).rejects.toBeInstanceOf(StateNotConstructed);
    const shown = await (await fetch(`${second.url}/v1/tasks/${task.taskId.taskUuid}`)).json();
    expect(shown.task.status).toBe("ABORTED");
  });
});

describe("idempotency over HTTP", () => {
  test("ExternalContext: a repeat (same context, or a new one with the seed) gets the recorded response; another request under the alias is refused", async () => {
    const { url } = await serve(copyApp());
    const ctx = new ExternalContext({ url, idempotencySeed: "client-1" });
    expect(await Cell.ref("a").idempotently("dep").add(ctx, { by: 5 })).toEqual({ n: 5 });
    expect(await Cell.ref("a").idempotently("dep").add(new ExternalContext({ url, idempotencySeed: "client-1" }), { by: 5 })).toEqual({ n: 5 });
    expect(await Cell.ref("a").idempotently().add(ctx, { by: 1 })).toEqual({ n: 6 });
    expect(await Cell.ref("a").idempotently().add(new ExternalContext({ url, idempotencySeed: "client-1" }), { by: 1 })).toEqual({ n: 6 });
    const conflict = await Cell.ref("a").idempotently("dep").add(ctx, { by: 7 }).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(IdempotencyConflict);
    expect(await Cell.ref("a").get(ctx)).toEqual({ n: 6 });
    // A declared error is recorded too.
    await expect(Tx.ref("t").idempotently("p").pass(ctx, { cells: ["b"] })).rejects.toBeInstanceOf(Tx.PassAborted);
    await expect(Tx.ref("t").idempotently("p").pass(ctx, { cells: ["b"] })).rejects.toBeInstanceOf(Tx.PassAborted);
  });

  test("the Idempotency-Key header on /v1/call and /v1/tasks: one change, one task", async () => {
    const { url } = await serve(copyApp());
    const call = { stateType: "Cell", stateId: "h", method: "add", request: { by: 2 } };
    const once = await post(url, "/v1/call", call, { "idempotency-key": "order-17" });
    const twice = await post(url, "/v1/call", call, { "idempotency-key": "order-17" });
    expect([once.body, twice.body]).toEqual([{ outcome: { status: "COMPLETED", response: { n: 2 } } }, { outcome: { status: "COMPLETED", response: { n: 2 } } }]);
    const other = await post(url, "/v1/call", { ...call, request: { by: 3 } }, { "idempotency-key": "order-17" });
    expect([other.status, other.body.error.code]).toEqual([409, "IDEMPOTENCY_CONFLICT"]);

    const spawn = { stateType: "Cell", stateId: "h", method: "add", request: { by: 1 } };
    const a = await post(url, "/v1/tasks", spawn, { "idempotency-key": "spawn-1" });
    const b = await post(url, "/v1/tasks", spawn, { "idempotency-key": "spawn-1" });
    expect(a.status).toBe(201);
    expect(b.body.taskId).toEqual(a.body.taskId);
    const list = await (await fetch(`${url}/v1/tasks`)).json();
    expect(list.tasks).toHaveLength(1);
  });

  test("an idempotent external call repeated from a second process after a restart runs once", async () => {
    const dir = copyApp();
    const first = await serve(dir);
    const run = async (url: string) => {
      const { stdout } = await execa("node", [clientScript, url, "seed-x", "deposit", "5"], { timeout: 20_000 });
      return JSON.parse(stdout) as { pid: number; response: unknown };
    };
    const one = await run(first.url);
    expect(one.response).toEqual({ n: 5 });
    first.child.kill("SIGTERM");
    await first.child;

    const second = await serve(dir);
    const two = await run(second.url);
    expect(two.pid).not.toBe(one.pid);
    expect(two.response).toEqual({ n: 5 });
    expect(await Cell.ref("shared").get(new ExternalContext({ url: second.url }))).toEqual({ n: 5 });
  });
});

describe("authorizers over HTTP", () => {
  test("on loopback: a denied call is 403 PERMISSION_DENIED (PermissionDenied); a bearer token becomes ctx.auth", async () => {
    const { url } = await serve(copyApp());
    const anonymous = new ExternalContext({ url });
    await expect(Guarded.ref("g").set(anonymous, { n: 1 })).rejects.toBeInstanceOf(PermissionDenied);
    const raw = await post(url, "/v1/call", { stateType: "Guarded", stateId: "g", method: "set", request: { n: 1 } });
    expect([raw.status, raw.body.error]).toEqual([403, { code: "PERMISSION_DENIED", message: "only admin-user may call Guarded.set" }]);
    const spawn = await post(url, "/v1/tasks", { stateType: "Guarded", stateId: "g", method: "later" });
    expect(spawn.status).toBe(403);

    const admin = new ExternalContext({ url, bearerToken: "t-admin" });
    await Guarded.ref("g").set(admin, { n: 4 });
    expect(await Guarded.ref("g").get(admin)).toEqual({ n: 4, userId: "admin-user" });
    expect(await Guarded.ref("g").get(anonymous)).toEqual({ n: 4, userId: null });
  });

  test("beyond loopback: an authorizer's type needs no admin secret (the authorizer decides); every other route still does", async () => {
    const secret = "reboot-admin-secret";
    const { url } = await serve(copyApp(), ["--host", "0.0.0.0", "--admin-secret", secret]);
    const local = `http://127.0.0.1:${new URL(url).port}`;
    const anonymous = new ExternalContext({ url: local });
    expect(await Guarded.ref("g").get(anonymous)).toEqual({ n: 0, userId: null });
    await expect(Guarded.ref("g").set(anonymous, { n: 1 })).rejects.toBeInstanceOf(PermissionDenied);
    // Cell has no authorizer: the secret is still needed.
    await expect(Cell.ref("c").add(anonymous)).rejects.toMatchObject({ code: "UNAUTHENTICATED" });
    expect((await fetch(`${local}/v1/tasks`)).status).toBe(401);

    const user = new ExternalContext({ url: local, bearerToken: "t-admin" });
    await Guarded.ref("g").set(user, { n: 2 });
    const { task } = await Guarded.ref("g").spawn().later(user);
    expect(await task).toEqual({ done: true });
    // Waiting is asked of the authorizer too: anonymous callers may not wait for `later`.
    const wait = await fetch(`${local}/v1/tasks/${task.taskId.taskUuid}/wait?timeout=1000`);
    expect(wait.status).toBe(403);

    // The admin is not checked by authorizers.
    await Guarded.ref("g").set(new ExternalContext({ url: local, adminCredential: secret }), { n: 3 });
    expect(await Guarded.ref("g").get(anonymous)).toEqual({ n: 3, userId: null });
  });
});
