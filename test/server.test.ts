import { beforeAll, describe, expect, test } from "vitest";
import { ExternalContext, MethodFailed, TaskId } from "mend";
import { Account, Bank } from "../fixtures/bank/src/api.js";
import { copyFixture, mend, serve } from "./helpers/cli.js";
import { tempDir } from "./helpers/temp.js";

let url: string;
let ctx: ExternalContext;
beforeAll(async () => {
  ({ url } = await serve(copyFixture("bank", tempDir(true)), [], true));
  ctx = new ExternalContext({ url });
});

function post(path: string, body: string, headers: Record<string, string> = {}) {
  return fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
}

describe("ExternalContext over HTTP", () => {
  test("calls methods with the same typed API", async () => {
    expect(await Account.ref("ext-alice").deposit(ctx, { amount: 10 })).toEqual({ balance: 10 });
    expect(await Account.ref("ext-alice").balance(ctx)).toEqual({ balance: 10 });
    await Bank.ref("b").transfer(ctx, { from: "ext-alice", to: "ext-bob", amount: 3 });
    expect(await Account.ref("ext-bob").balance(ctx)).toEqual({ balance: 3 });
  });

  test("a declared error comes back as the same Aborted class with its fields", async () => {
    const error = await Account.ref("ext-carol").withdraw(ctx, { amount: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Account.WithdrawAborted);
    expect((error as InstanceType<typeof Account.WithdrawAborted>).error).toEqual({ type: "Overdraft", shortBy: 5 });
  });

  test("spawns, awaits and retrieves tasks", async () => {
    const { task } = await Account.ref("ext-dan").spawn().welcomeEmail(ctx);
    expect(await task).toEqual({ sent: true });
    expect(await Account.WelcomeEmailTask.retrieve(ctx, { taskId: TaskId.format(task.taskId) })).toEqual({ sent: true });
    // Calling a workflow directly is spawn-then-await.
    expect(await Account.ref("ext-dan").welcomeEmail(ctx)).toEqual({ sent: true });
  });

  test("a request that fails its schema is refused with the schema's message", async () => {
    const response = await post("/v1/call", JSON.stringify({ stateType: "Account", stateId: "x", method: "deposit", request: { amount: "ten" } }));
    expect(response.status).toBe(400);
    expect((await response.json()).error.message).toMatch(/^Invalid request for Account.deposit: .*expected number/s);
  });

  test("an unexpected error in a method reaches the caller as MethodFailed, its stack mapped to the .ts source", async () => {
    const error = await Account.ref("ext-erin").preview(ctx).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MethodFailed);
    expect((error as MethodFailed).message).toBe("Unknown currency 'usd'");
    expect((error as MethodFailed).stack).toMatch(/src\/format\.ts:5:/);
  });

  test("an unknown method is a 404 that names it", async () => {
    const response = await post("/v1/call", JSON.stringify({ stateType: "Account", stateId: "x", method: "nope" }));
    expect(response.status).toBe(404);
    expect((await response.json()).error).toEqual({ code: "NOT_FOUND", message: "Unknown method Account.nope." });
  });
});

describe("refusals, and the server keeps serving", () => {
  test("a foreign Host header is refused", async () => {
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${url}/health`, { headers: { host: "evil.example" } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(403);
  });

  test("a cross-origin browser request is refused", async () => {
    const response = await post("/v1/call", "{}", { origin: "http://evil.example" });
    expect(response.status).toBe(403);
    expect((await response.json()).error.code).toBe("CROSS_ORIGIN");
    const fetchSite = await fetch(`${url}/health`, { headers: { "sec-fetch-site": "cross-site" } });
    expect(fetchSite.status).toBe(403);
  });

  test("a body over 1 MiB is refused", async () => {
    const response = await post("/v1/call", JSON.stringify({ pad: "x".repeat(1024 * 1024 + 10) }));
    expect(response.status).toBe(413);
  });

  test("malformed JSON, a wrong content type, unknown names and unknown tasks get a 4xx that says what is wrong", async () => {
    const bad = await post("/v1/call", "{not json");
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.code).toBe("MALFORMED_JSON");
    const text = await fetch(`${url}/v1/call`, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
    expect(text.status).toBe(415);
    const noType = await post("/v1/call", JSON.stringify({ stateType: "Nope", stateId: "x", method: "m" }));
    expect(noType.status).toBe(404);
    expect((await noType.json()).error.message).toBe("Unknown state type Nope.");
    const missing = await post("/v1/call", JSON.stringify({ stateType: "Account" }));
    expect(missing.status).toBe(400);
    expect((await missing.json()).error.message).toMatch(/^Invalid call: .*stateId/s);
    const task = await fetch(`${url}/v1/tasks/00000000-0000-4000-8000-000000000000`);
    expect(task.status).toBe(404);
    const notUuid = await fetch(`${url}/v1/tasks/xyz`);
    expect(notUuid.status).toBe(400);
    const route = await fetch(`${url}/v2/nothing`);
    expect(route.status).toBe(404);
    const verb = await fetch(`${url}/v1/call`);
    expect(verb.status).toBe(405);
  });

  test("a client that disconnects in the middle of a body loses nothing", async () => {
    const { connect } = await import("node:net");
    const { port } = new URL(url);
    await new Promise<void>((resolve) => {
      const socket = connect(Number(port), "127.0.0.1", () => {
        socket.write("POST /v1/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"stateType\":");
        socket.destroy();
        resolve();
      });
    });
    expect(await Account.ref("ext-alice").balance(ctx)).toEqual({ balance: 7 });
  });

  test("the server still serves after all of the above", async () => {
    const health = await fetch(`${url}/health`);
    expect(await health.json()).toMatchObject({ ok: true, version: "v1" });
  });
});
