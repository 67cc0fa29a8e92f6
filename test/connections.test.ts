// Connections (issue 13, item 9): a client that trickles its headers or its body is cut off
// after a bounded time, connections past the cap are closed at once, and the long poll of
// /wait (which outlives both bounds) keeps working. Real sockets against a real server.
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import { Application, defineApi, ExternalContext, startServer, z, type RunningServer, type ServerOptions } from "mend";
import bank from "../fixtures/bank/src/main.js";
import { Account } from "../fixtures/bank/src/api.js";
import { start } from "./helpers/runtimes.js";

const servers: RunningServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await s.close();
});

async function serveBank(options: ServerOptions) {
  const rt = await start(bank);
  const server = await startServer(rt, { port: 0, ...options });
  servers.push(server);
  return { rt, url: server.url, port: Number(new URL(server.url).port) };
}

/**
 * Writes `bytes` one piece every `everyMs` until the server closes the connection.
 * Resolves with what the server answered and how many pieces it took, or rejects if the
 * client got to write them all (the server never cut it off).
 */
function trickle(port: number, pieces: string[], everyMs: number): Promise<{ answer: string; written: number }> {
  return new Promise((resolve, reject) => {
    let answer = "";
    let written = 0;
    const socket = connect(port, "127.0.0.1");
    sockets.push(socket);
    const timer = setInterval(() => {
      if (written === pieces.length) {
        clearInterval(timer);
        return reject(new Error(`the server let the client write all ${pieces.length} pieces`));
      }
      socket.write(pieces[written++]!);
    }, everyMs);
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => (answer += c));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(timer);
      resolve({ answer, written });
    });
  });
}

/** Opens a connection and resolves once it is established. */
function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => resolve(socket));
    sockets.push(socket);
    socket.on("error", reject);
  });
}

/** Sends one request on a new connection; resolves with the answer, or "" if the server closed it unanswered. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    let answer = "";
    const socket = connect(port, "127.0.0.1", () => socket.write(text));
    sockets.push(socket);
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => (answer += c));
    socket.on("error", () => {});
    socket.on("close", () => resolve(answer));
  });
}

describe("slow clients are cut off", () => {
  test("headers trickled one byte at a time get a 408 once the headers time is up", async () => {
    const { port } = await serveBank({ headersTimeoutMs: 400, bodyTimeoutMs: 5000 });
    const head = `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${"a".repeat(400)}\r\n\r\n`;
    const { answer, written } = await trickle(port, [...head], 20);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(written).toBeLessThan(head.length);
  });

  test("a body trickled one byte at a time is cut off once the body time is up, and its call does not run", async () => {
    const { rt, port } = await serveBank({ headersTimeoutMs: 5000, bodyTimeoutMs: 400 });
    const body = JSON.stringify({ stateType: "Account", stateId: "slow", method: "deposit", request: { amount: 1, pad: "p".repeat(300) } });
    const head = `POST /v1/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const { answer, written } = await trickle(port, [head, ...body], 20);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(written).toBeLessThan(body.length);
    expect(await Account.ref("slow").balance(rt.context())).toEqual({ balance: 0 });
  });

  test("a connection that sends nothing is closed after the headers time", async () => {
    const { port } = await serveBank({ headersTimeoutMs: 300 });
    const { answer } = await trickle(port, new Array(1000).fill(""), 20);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  test("the long poll of /wait outlives both bounds", async () => {
    const { url } = await serveBank({ headersTimeoutMs: 200, bodyTimeoutMs: 200 });
    const ctx = new ExternalContext({ url });
    const { task } = await Account.ref("patient").spawn({ when: { ms: 1500 } }).welcomeEmail(ctx);
    const response = await fetch(`${url}/v1/tasks/${task.taskId.taskUuid}/wait?timeout=20000`);
    expect(await response.json()).toEqual({ done: true, outcome: { status: "COMPLETED", response: { sent: true } } });
  });
});

describe("a client that goes away", () => {
  test("aborts its call: the method's signal aborts, and its change is not committed", async () => {
    const { Slow } = defineApi({
      Slow: { state: { n: z.number().default(0) }, methods: { hold: { kind: "writer", request: {}, response: z.void() }, bump: { kind: "writer", request: {}, response: { n: z.number() } }, get: { kind: "reader", request: {}, response: { n: z.number() } } } },
    });
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    let aborted!: (reason: unknown) => void;
    const abortedWith = new Promise<unknown>((resolve) => (aborted = resolve));
    const app = new Application({
      servicers: [
        Slow.servicer({
          async hold(ctx, state) {
            state.n += 1;
            entered();
            await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => (aborted(ctx.signal.reason), resolve())));
          },
          async bump(ctx, state) {
            state.n += 1;
            return { n: state.n };
          },
          async get(ctx, state) {
            return { n: state.n };
          },
        }),
      ],
    });
    const rt = await start(app);
    const server = await startServer(rt, { port: 0 });
    servers.push(server);
    const port = Number(new URL(server.url).port);
    const body = JSON.stringify({ stateType: "Slow", stateId: "s", method: "hold" });
    const socket = connect(port, "127.0.0.1", () =>
      socket.write(`POST /v1/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`),
    );
    sockets.push(socket);
    socket.on("error", () => {});
    await inside;
    socket.destroy();
    expect(await abortedWith).toMatchObject({ code: "CLIENT_GONE" });
    // Its change was not committed, and its instance is free for the next writer.
    expect(await Slow.ref("s").bump(rt.context())).toEqual({ n: 1 });
  });
});

describe("the connection cap", () => {
  test("connections past the cap are closed at once; once some go, new ones are served", async () => {
    const { port } = await serveBank({ maxConnections: 3, headersTimeoutMs: 60_000 });
    const held = await Promise.all([open(port), open(port), open(port)]);
    const health = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    expect(await rawRequest(port, health)).toBe("");
    const gone = held.map((s) => new Promise((resolve) => s.once("close", resolve)));
    for (const s of held) s.destroy();
    await Promise.all(gone);
    // The server learns of the closes asynchronously; a request after that is served.
    let answer = "";
    for (let i = 0; i < 50 && answer === ""; i++) answer = await rawRequest(port, health);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
  });

  test("options must be whole numbers", async () => {
    const rt = await start(bank);
    await expect(startServer(rt, { port: 0, maxConnections: 0 })).rejects.toThrow("maxConnections must be an integer >= 1, got 0.");
    await expect(startServer(rt, { port: 0, headersTimeoutMs: 1.5 })).rejects.toThrow("headersTimeoutMs must be an integer >= 1, got 1.5.");
  });
});
