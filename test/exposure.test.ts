// Serving beyond loopback (issue 13, item 2): every route but a minimal /health needs the
// admin secret whatever the client's address, Host names are limited to the bound address,
// IP addresses and --allowed-host, and cross-origin requests need --allowed-origin.
// The server binds 0.0.0.0 and is reached through 127.0.0.1, never the machine's own address.
import { request } from "node:http";
import { describe, expect, test } from "vitest";
import { ExternalContext } from "mend";
import { Account } from "../fixtures/bank/src/api.js";
import { bearerToken, checkRequest, isAllowedHost, needsAdminSecret, passesToAuthorizer, type GuardOptions } from "../src/server/guard.js";
import { allow, deny, decisionOf } from "../src/api/authorization.js";
import { copyFixture, serve } from "./helpers/cli.js";

describe("the rules (pure)", () => {
  const beyond: GuardOptions = { loopback: false, boundHost: "0.0.0.0", allowedHosts: ["app.example", ".corp.example"], allowedOrigins: ["https://ui.example"] };

  test("beyond loopback, Host must be a loopback name, an IP address, the bound name or an allowed name", () => {
    for (const name of ["localhost", "127.0.0.1", "10.1.2.3", "[::1]", "[fe80::1]", "app.example", "corp.example", "a.corp.example"])
      expect([name, isAllowedHost(name, beyond)]).toEqual([name, true]);
    for (const name of ["evil.com", "app.example.evil.com", "xcorp.example", "0.0.0.0.evil.com", ""])
      expect([name, isAllowedHost(name, beyond)]).toEqual([name, false]);
    expect(isAllowedHost("box.lan", { loopback: false, boundHost: "box.lan" })).toBe(true);
    // On loopback: loopback names, and only the names allowed explicitly.
    expect(isAllowedHost("10.1.2.3", { loopback: true })).toBe(false);
    expect(isAllowedHost("app.example", { loopback: true, allowedHosts: ["app.example"] })).toBe(true);
  });

  test("a DNS-rebinding request (foreign Host, same-origin Origin) is refused beyond loopback", () => {
    expect(checkRequest({ host: "evil.com:9991", origin: "http://evil.com:9991" }, beyond)).toMatchObject({ status: 403, code: "FORBIDDEN_HOST" });
  });

  test("cross-origin requests are refused unless their origin is allowed", () => {
    expect(checkRequest({ host: "10.0.0.5:9991", origin: "https://other.example" }, beyond)).toMatchObject({ code: "CROSS_ORIGIN" });
    expect(checkRequest({ host: "10.0.0.5:9991", "sec-fetch-site": "cross-site" }, beyond)).toMatchObject({ code: "CROSS_ORIGIN" });
    expect(checkRequest({ host: "10.0.0.5:9991", origin: "https://ui.example" }, beyond)).toBeUndefined();
    expect(checkRequest({ host: "10.0.0.5:9991", origin: "https://ui.example:443", "sec-fetch-site": "cross-site" }, beyond)).toBeUndefined();
    expect(checkRequest({ host: "10.0.0.5:9991", origin: "http://ui.example" }, beyond)).toMatchObject({ code: "CROSS_ORIGIN" });
    expect(checkRequest({ host: "10.0.0.5:9991", origin: "http://10.0.0.5:9991" }, beyond)).toBeUndefined();
  });

  test("beyond loopback every route but /health needs the secret; on loopback only task admin does", () => {
    const routes = ["health", "call", "spawn", "wait", "list", "show", "cancel", "retry"] as const;
    const need = (options: { loopback: boolean; adminSecret?: string }) => routes.filter((r) => needsAdminSecret(r, options));
    expect(need({ loopback: false, adminSecret: "s" })).toEqual(["call", "spawn", "wait", "list", "show", "cancel", "retry"]);
    expect(need({ loopback: true, adminSecret: "s" })).toEqual(["list", "show", "cancel", "retry"]);
    expect(need({ loopback: true })).toEqual([]);
  });

  test("an authorizer stands in for the secret on call, spawn and wait only; a token is read from Authorization: Bearer", () => {
    const routes = ["health", "call", "spawn", "wait", "list", "show", "cancel", "retry"] as const;
    expect(routes.filter(passesToAuthorizer)).toEqual(["call", "spawn", "wait"]);
    expect([bearerToken("Bearer abc"), bearerToken("Basic abc"), bearerToken(undefined), bearerToken("Bearer ")]).toEqual(["abc", undefined, undefined, undefined]);
  });

  test("an authorizer's decision: only allow() lets a call through", () => {
    expect(decisionOf(allow())).toEqual({ allowed: true });
    expect(decisionOf(deny())).toEqual({ allowed: false });
    expect(decisionOf(deny("no"))).toEqual({ allowed: false, message: "no" });
    expect(decisionOf(new Error("not yours"))).toEqual({ allowed: false, message: "not yours" });
    expect(decisionOf(true)).toEqual({ allowed: false, message: "An authorizer must return allow(), deny() or an Error, not true." });
    expect(decisionOf(undefined).allowed).toBe(false);
  });
});

type Answer = { status: number; headers: Record<string, string | string[] | undefined>; body: any };

/** One request through 127.0.0.1 with exactly these headers. */
function send(port: number, method: string, path: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const text = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers = { ...(text !== undefined ? { "content-type": "application/json" } : {}), ...options.headers };
    const req = request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (data += c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: data ? JSON.parse(data) : undefined }));
    });
    req.on("error", reject);
    req.end(text);
  });
}

describe("mend serve --host 0.0.0.0", () => {
  const secret = "exposure-secret-1234";
  const auth = { authorization: `Bearer ${secret}` };

  async function start(extra: string[] = []) {
    const { url } = await serve(copyFixture("bank"), ["--host", "0.0.0.0", "--admin-secret", secret, ...extra]);
    const port = Number(new URL(url).port);
    return { port, local: `http://127.0.0.1:${port}` };
  }

  test("without the secret only a minimal /health answers; nothing runs, nothing is created", async () => {
    const { port, local } = await start();
    const health = await send(port, "GET", "/health");
    expect([health.status, health.body]).toEqual([200, { ok: true }]);

    const call = await send(port, "POST", "/v1/call", { body: { stateType: "Account", stateId: "eve", method: "deposit", request: { amount: 5 } } });
    expect([call.status, call.body.error.code, call.headers["www-authenticate"]]).toEqual([401, "UNAUTHENTICATED", "Bearer"]);
    const spawn = await send(port, "POST", "/v1/tasks", { body: { stateType: "Account", stateId: "eve", method: "welcomeEmail", request: {} } });
    expect([spawn.status, spawn.body.error.code]).toEqual([401, "UNAUTHENTICATED"]);
    const wrong = await send(port, "POST", "/v1/call", { body: { stateType: "Account", stateId: "eve", method: "balance" }, headers: { authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);

    // The admin sees that nothing happened, and may read and act on everything.
    const admin = new ExternalContext({ url: local, adminCredential: secret });
    expect(await Account.ref("eve").balance(admin)).toEqual({ balance: 0 });
    const list = await send(port, "GET", "/v1/tasks", { headers: auth });
    expect([list.status, list.body.tasks]).toEqual([200, []]);

    const { task } = await Account.ref("eve").spawn().welcomeEmail(admin);
    expect(await task).toEqual({ sent: true });
    const uuid = task.taskId.taskUuid;
    for (const [method, path] of [["GET", `/v1/tasks/${uuid}/wait?timeout=1000`], ["GET", `/v1/tasks/${uuid}`], ["GET", "/v1/tasks"], ["POST", `/v1/tasks/${uuid}/cancel`], ["POST", `/v1/tasks/${uuid}/retry`]] as const) {
      const refused = await send(port, method, path);
      expect([path, refused.status]).toEqual([path, 401]);
    }
    const fullHealth = await send(port, "GET", "/health", { headers: auth });
    expect(fullHealth.body).toMatchObject({ ok: true, version: "v1", pid: expect.any(Number) });
  });

  test("a proxy on the same machine gains nothing: a loopback client needs the secret too", async () => {
    const { local } = await start();
    const anonymous = new ExternalContext({ url: local });
    await expect(Account.ref("mallory").deposit(anonymous, { amount: 1 })).rejects.toMatchObject({ code: "UNAUTHENTICATED" });
  });

  test("a DNS-rebinding request is refused even with the secret; --allowed-host and --allowed-origin open exactly what they name", async () => {
    const { port } = await start(["--allowed-host", "app.example", "--allowed-origin", "https://ui.example"]);
    const rebinding = await send(port, "GET", "/health", { headers: { ...auth, host: `evil.com:${port}`, origin: `http://evil.com:${port}` } });
    expect([rebinding.status, rebinding.body.error.code]).toEqual([403, "FORBIDDEN_HOST"]);
    const spawn = await send(port, "POST", "/v1/tasks", {
      body: { stateType: "Account", stateId: "rebound", method: "welcomeEmail", request: {} },
      headers: { ...auth, host: `evil.com:${port}` },
    });
    expect(spawn.status).toBe(403);

    const named = await send(port, "GET", "/health", { headers: { ...auth, host: `app.example:${port}` } });
    expect([named.status, named.body.ok]).toEqual([200, true]);
    const other = await send(port, "GET", "/health", { headers: { host: `other.example:${port}` } });
    expect(other.status).toBe(403);

    const foreign = await send(port, "GET", "/v1/tasks", { headers: { ...auth, origin: "https://evil.example" } });
    expect([foreign.status, foreign.body.error.code]).toEqual([403, "CROSS_ORIGIN"]);
    const allowed = await send(port, "GET", "/v1/tasks", { headers: { ...auth, origin: "https://ui.example", "sec-fetch-site": "cross-site" } });
    expect([allowed.status, allowed.headers["access-control-allow-origin"]]).toEqual([200, "https://ui.example"]);
    // The browser's preflight carries no secret; it is answered for the allowed origin only.
    const preflight = await send(port, "OPTIONS", "/v1/call", { headers: { origin: "https://ui.example", "access-control-request-method": "POST" } });
    expect([preflight.status, preflight.headers["access-control-allow-headers"]]).toEqual([204, "authorization, content-type, last-event-id, x-mend-token"]);
    const stillNeedsSecret = await send(port, "POST", "/v1/call", {
      body: { stateType: "Account", stateId: "ui", method: "balance" },
      headers: { origin: "https://ui.example" },
    });
    expect(stillNeedsSecret.status).toBe(401);
  });
});
