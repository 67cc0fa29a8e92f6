// Decisions kept as pure functions: which requests are refused, how time and tables
// print, how builds are queued.
import { afterEach, describe, expect, test, vi } from "vitest";
import { cut, duration, relativeTime, table } from "../src/cli/format.js";
import { bearerToken, checkRequest, hasAdminSecret, hostName, isAllowedHost, isAllowedOrigin, isLoopbackHost, needsAdminSecret, originOf, passesToAuthorizer, type RouteName } from "../src/server/guard.js";
import { attemptLine, readyLine, taskLabel, userStack } from "../dev/output.js";
import { serial } from "../dev/serial.js";
import { inputsOf } from "../dev/builder.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("checkRequest", () => {
  const loopback = { loopback: true };
  test("accepts loopback hosts and same-origin requests", () => {
    for (const host of ["localhost:9991", "127.0.0.1:9991", "[::1]:9991", "app.localhost", "127.0.0.2"])
      expect(checkRequest({ host }, loopback)).toBeUndefined();
    expect(checkRequest({ host: "localhost:9991", origin: "http://localhost:9991" }, loopback)).toBeUndefined();
    expect(checkRequest({ host: "127.0.0.1:1", "sec-fetch-site": "same-origin" }, loopback)).toBeUndefined();
  });
  test("refuses foreign hosts, on loopback and beyond it (see test/exposure.test.ts)", () => {
    expect(checkRequest({ host: "evil.example" }, loopback)).toMatchObject({ status: 403, code: "FORBIDDEN_HOST" });
    expect(checkRequest({}, loopback)).toMatchObject({ status: 403, code: "FORBIDDEN_HOST" });
    expect(checkRequest({ host: "evil.example" }, { loopback: false })).toMatchObject({ status: 403, code: "FORBIDDEN_HOST" });
    // Names that only start or end like a loopback name are a rebinding attacker's own.
    for (const host of ["127.0.0.1.evil.example", "localhost.evil.example", "127.0.0.1.evil.example:9991", "evil-localhost", "127.0.0.1evil.example", "[::1].evil.example"])
      expect(checkRequest({ host }, loopback), host).toMatchObject({ status: 403, code: "FORBIDDEN_HOST" });
  });
  test("refuses cross-origin browser requests", () => {
    expect(checkRequest({ host: "localhost:9991", origin: "http://evil.example" }, loopback)).toMatchObject({ code: "CROSS_ORIGIN" });
    expect(checkRequest({ host: "localhost:9991", origin: "http://localhost:3000" }, loopback)).toMatchObject({ code: "CROSS_ORIGIN" });
    expect(checkRequest({ host: "localhost:9991", origin: "null" }, loopback)).toMatchObject({ code: "CROSS_ORIGIN" });
    expect(checkRequest({ host: "localhost:9991", "sec-fetch-site": "cross-site" }, loopback)).toMatchObject({ code: "CROSS_ORIGIN" });
  });
  test("the admin secret must match exactly", () => {
    expect(hasAdminSecret("Bearer s3cret", "s3cret")).toBe(true);
    expect(hasAdminSecret("Bearer s3cre", "s3cret")).toBe(false);
    expect(hasAdminSecret("s3cret", "s3cret")).toBe(false);
    expect(hasAdminSecret(undefined, "s3cret")).toBe(false);
  });
  test("host names", () => {
    expect(hostName("[::1]:80")).toBe("[::1]");
    expect(hostName("[::1]")).toBe("[::1]");
    expect(hostName("[::1")).toBe("[::1");
    // After an IPv6 literal's bracket only a port may follow; anything else is the attacker's name, whole.
    expect(hostName("[::1].evil.example")).toBe("[::1].evil.example");
    expect(hostName("[::1]:80x")).toBe("[::1]:80x");
    expect(hostName("[::1]x:80")).toBe("[::1]x:80");
    expect(hostName("[::ABCD]:80")).toBe("[::abcd]");
    expect(hostName("LOCALHOST:80")).toBe("localhost");
    expect(isLoopbackHost("0.0.0.0")).toBe(false);
    for (const host of ["127.0.0.1", "127.255.255.254", "127.10.20.30"]) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ["127.0.0.1.2", "127.1000.0.1", "127.0.0", "x127.0.0.1", "127.0.0.1x", "128.0.0.1"]) expect(isLoopbackHost(host), host).toBe(false);
  });
  test("beyond loopback: IP literals, the bound name and the allowed names; a leading dot allows subdomains", () => {
    const beyond = { loopback: false, boundHost: "Box.Example", allowedHosts: ["API.example", ".corp.example"] };
    for (const name of ["localhost", "10.0.0.5", "[fe80::1]", "box.example", "api.example", "corp.example", "a.corp.example", "a.b.corp.example"])
      expect(isAllowedHost(name, beyond), name).toBe(true);
    for (const name of ["evil.example", "x.api.example", "evilcorp.example", "box.example.evil", "[fe80::1", "10.0.0"])
      expect(isAllowedHost(name, beyond), name).toBe(false);
    // On loopback, IP literals and the bound name are not enough; the allowed names are.
    const onLoopback = { ...beyond, loopback: true };
    for (const name of ["10.0.0.5", "[fe80::1]", "box.example"]) expect(isAllowedHost(name, onLoopback), name).toBe(false);
    for (const name of ["api.example", "a.corp.example"]) expect(isAllowedHost(name, onLoopback), name).toBe(true);
    expect(isAllowedHost("box.example", { loopback: false })).toBe(false);
    expect(checkRequest({ host: "a.corp.example:443" }, beyond)).toBeUndefined();
    expect(checkRequest({ host: "evil.example" }, beyond)).toEqual({
      status: 403,
      code: "FORBIDDEN_HOST",
      message: "Host 'evil.example' is not an accepted name (the bound address, an IP address, or --allowed-host); refused (DNS rebinding protection).",
    });
    expect(checkRequest({ host: "evil.example" }, onLoopback)?.message).toBe("Host 'evil.example' is not a loopback name; refused (DNS rebinding protection).");
  });
  test("allowed origins, compared as a browser sends them", () => {
    expect(originOf("https://App.Example:443/path?q")).toBe("https://app.example");
    expect(originOf("null")).toBeUndefined();
    expect(originOf("file:///etc/passwd")).toBeUndefined(); // an opaque origin
    expect(originOf("not a url")).toBeUndefined();
    const options = { loopback: true, allowedOrigins: ["https://app.example/", "not a url"] };
    expect(isAllowedOrigin("https://app.example", options)).toBe(true);
    expect(isAllowedOrigin("https://APP.example:443", options)).toBe(true);
    expect(isAllowedOrigin("http://app.example", options)).toBe(false);
    expect(isAllowedOrigin("https://app.example:8443", options)).toBe(false);
    expect(isAllowedOrigin(undefined, options)).toBe(false);
    expect(isAllowedOrigin("null", { loopback: true, allowedOrigins: ["null"] })).toBe(false);
    expect(isAllowedOrigin("https://app.example", { loopback: true })).toBe(false);
    // An allowed origin passes the cross-origin checks; a same-site page that is not allowed does not.
    expect(checkRequest({ host: "localhost:9991", origin: "https://app.example", "sec-fetch-site": "cross-site" }, options)).toBeUndefined();
    expect(checkRequest({ host: "localhost:9991", "sec-fetch-site": "same-site" }, options)).toMatchObject({ code: "CROSS_ORIGIN" });
    expect(checkRequest({ host: "localhost:9991", "sec-fetch-site": "none" }, options)).toBeUndefined();
    expect(checkRequest({ host: "localhost:9991", origin: "::bad" }, options)).toMatchObject({ code: "CROSS_ORIGIN", message: "Origin '::bad' is not a URL; refused." });
  });
  test("which routes need the admin secret, and which an authorizer decides", () => {
    const all: RouteName[] = ["health", "call", "spawn", "wait", "list", "show", "cancel", "retry", "page", "dashboard", "events", "inspect", "rerun"];
    const needing = (options: { loopback: boolean; adminSecret?: string }) => all.filter((r) => needsAdminSecret(r, options));
    expect(needing({ loopback: true })).toEqual([]);
    expect(needing({ loopback: false })).toEqual([]); // serve refuses to start beyond loopback without one
    expect(needing({ loopback: true, adminSecret: "s" })).toEqual(["list", "show", "cancel", "retry", "dashboard", "events", "inspect", "rerun"]);
    expect(needing({ loopback: false, adminSecret: "s" })).toEqual(all.filter((r) => r !== "health" && r !== "page"));
    expect(all.filter(passesToAuthorizer)).toEqual(["call", "spawn", "wait"]);
    expect(bearerToken("Bearer abc def")).toBe("abc def");
    expect(bearerToken("bearer abc")).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken("xBearer abc")).toBeUndefined();
    expect(hasAdminSecret("xBearer s3cret", "s3cret")).toBe(false);
  });
  test("each refusal says why, and what would let the request in", () => {
    const loopback = { loopback: true };
    expect(checkRequest({}, loopback)?.message).toBe("Host '' is not a loopback name; refused (DNS rebinding protection).");
    expect(checkRequest({ host: "localhost:9991", origin: "http://localhost:3000" }, loopback)?.message).toBe(
      "Cross-origin request from 'http://localhost:3000' refused (allow it with --allowed-origin).",
    );
    expect(checkRequest({ host: "localhost:9991", "sec-fetch-site": "cross-site" }, loopback)?.message).toBe(
      "Cross-origin browser requests are refused (allow an origin with --allowed-origin).",
    );
  });
});

describe("CLI formatting", () => {
  test("relative times pick the largest unit", () => {
    const now = 1_000_000_000;
    expect(relativeTime(now + 400, now)).toBe("now");
    expect(relativeTime(now - 3_000, now)).toBe("3 s ago");
    expect(relativeTime(now + 125_000, now)).toBe("in 2 min");
    expect(relativeTime(now - 3 * 3_600_000, now)).toBe("3 h ago");
    expect(relativeTime(now + 2 * 86_400_000, now)).toBe("in 2 d");
  });
  test("durations", () => {
    expect([duration(41), duration(2300), duration(240_000)]).toEqual(["41 ms", "2.3 s", "4 min"]);
  });
  test("the last column is cut so each line fits", () => {
    const out = table(["A", "LAST"], [["xx", "a long error message\nsecond line"]], 16);
    expect(out.split("\n")).toEqual(["A   LAST", "xx  a long erro…"]);
    expect(cut("abc", 0)).toBe("");
  });
});

describe("dev output", () => {
  test("one line per reload", () => {
    expect(readyLine("v7", 41.4, ["src/email.ts"], 2)).toContain("ready in 41 ms (src/email.ts) — retrying 2 failing tasks");
    expect(readyLine("v1", 80, [], 0)).toMatch(/ready in 80 ms$/);
    expect(readyLine("v2", 5, ["a", "b", "c", "d"], 1)).toContain("(a, b, c, …) — retrying 1 failing task");
  });
  test("task labels and attempt lines", () => {
    expect(taskLabel("Account/a%2Fb/0123456789abcdef", "open")).toContain("Account('a/b').open");
    const failed = attemptLine(
      { taskId: "A/x/0123456789", method: "m", attempt: 2, version: "v3", outcome: "FAILED", retryInMs: 1500,
        error: { name: "TypeError", message: "boom", stack: "TypeError: boom\n    at f (/app/src/x.ts:3:4)\n    at g (node:internal/x:1:1)\n    at h (/repo/node_modules/y/z.js:1:1)" } },
      true,
    );
    expect(failed).toContain("failed on v3 (attempt 2): TypeError: boom");
    expect(failed).toContain("retry in 1.5 s");
    expect(failed.split("\n")).toHaveLength(2);
    // An app's own src/runtime/ is the user's code (mend's frames never reach here).
    expect(userStack("E\n    at a (/app/src/runtime/a.ts:1:1)\n    at b (node:internal/x:1:1)")).toBe("    at a (/app/src/runtime/a.ts:1:1)");
  });
  test("build inputs are absolute and leave out packages", () => {
    expect(inputsOf({ inputs: { "src/a.ts": {}, "node_modules/zod/index.js": {}, "/abs/b.ts": {} }, outputs: {} } as never, "/app")).toEqual([
      "/app/src/a.ts",
      "/abs/b.ts",
    ]);
  });
});

describe("serial", () => {
  test("never overlaps runs and folds triggers during a run into one more run", async () => {
    vi.useFakeTimers();
    const runs: string[][] = [];
    let release!: () => void;
    let active = 0;
    let maxActive = 0;
    const trigger = serial<string>(async (reasons) => {
      active++;
      maxActive = Math.max(maxActive, active);
      runs.push(reasons);
      await new Promise<void>((resolve) => (release = resolve));
      active--;
    }, 5);
    trigger("a");
    trigger("b");
    await vi.advanceTimersByTimeAsync(5);
    expect(runs).toEqual([["a", "b"]]);
    trigger("c");
    trigger("d");
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toEqual([["a", "b"], ["c", "d"]]);
    release();
    await vi.advanceTimersByTimeAsync(10);
    expect(runs).toHaveLength(2);
    expect(maxActive).toBe(1);
  });
});
