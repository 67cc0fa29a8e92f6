// State instances (src/runtime/states.ts): a state that does not match its schema is a clear
// error, whether a writer left it or the store holds it; a write on its way to disk is what
// the next writer reads, until it is durable or dropped; watchers hear of each durable write.
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { Application, defineApi, z } from "mend";
import { States, stateKey } from "../src/runtime/states.js";
import { SqliteStore } from "../src/store/sqlite-store.js";
import { start } from "./helpers/runtimes.js";
import { tempDir } from "./helpers/temp.js";

describe("a state that does not match its schema", () => {
  const v1 = defineApi({
    Cell: {
      state: { n: z.number().default(0) },
      methods: {
        add: { kind: "writer", request: {}, response: { n: z.number() } },
        spoil: { kind: "writer", request: {}, response: z.void() },
        get: { kind: "reader", request: {}, response: { n: z.number() } },
      },
    },
  }).Cell;
  const app1 = new Application({
    servicers: [
      v1.servicer({
        async add(ctx, state) {
          state.n += 1;
          return { n: state.n };
        },
        async spoil(ctx, state) {
          (state as { n: unknown }).n = "many";
        },
        async get(ctx, state) {
          return { n: state.n };
        },
      }),
    ],
  });

  test("left by a writer: INVALID_STATE naming the method and the instance, and nothing is written", async () => {
    const rt = await start(app1);
    const ctx = rt.context();
    await v1.ref("a").add(ctx);
    const error = await v1.ref("a").spoil(ctx).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "INVALID_STATE" });
    expect((error as Error).message).toMatch(/^Cell\.spoil left the state of Cell\('a'\) not matching its schema: ✖ Invalid input: expected number, received string\n {2}→ at n$/);
    expect(await v1.ref("a").get(ctx)).toEqual({ n: 1 });
  });

  test("held by the store, under code whose schema changed: INVALID_STATE naming the instance, for readers and writers", async () => {
    const rt = await start(app1);
    await v1.ref("a").add(rt.context());
    const v2 = defineApi({
      Cell: {
        state: { n: z.string() },
        methods: { get: { kind: "reader", request: {}, response: { n: z.string() } } },
      },
    }).Cell;
    await rt.load(new Application({ servicers: [v2.servicer({ get: async (ctx, state) => ({ n: state.n }) })] }));
    const error = await v2.ref("a").get(rt.context()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "INVALID_STATE" });
    expect((error as Error).message).toMatch(
      /^The stored state of Cell\('a'\) does not match the state schema of this code: ✖ Invalid input: expected string, received number\n {2}→ at n$/,
    );
  });
});

describe("States, on a store", () => {
  const stores: SqliteStore[] = [];
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
  });

  function open() {
    const store = new SqliteStore(join(tempDir(), "mend.sqlite"));
    stores.push(store);
    return { store, states: new States(store) };
  }

  /** Writes the instance's state in the store, as a commit (of this server or another) would. */
  const write = (store: SqliteStore, json: string) => store.commit((w) => w.writeState("Cell", "a", json, 0, 1));
  const latestJson = async (states: States) => (await states.latest("Cell", "a"))?.json;

  test("a write on its way to disk is what a writer reads; once durable, the store is read again", async () => {
    const { store, states } = open();
    expect(await latestJson(states)).toBeUndefined();
    const durable = states.setPending("Cell", "a", '{"n":1}', 1);
    expect(await latestJson(states)).toBe('{"n":1}');
    // Readers see only what is durable.
    expect(await states.committedJson("Cell", "a")).toBeUndefined();
    await write(store, '{"n":1}');
    durable();
    // What the store holds from now on is what counts (on a shared store another server may write it).
    await write(store, '{"n":5}');
    expect(await latestJson(states)).toBe('{"n":5}');
  });

  test("of two writes on their way, the first becoming durable leaves the second to be read, in either order", async () => {
    const { store, states } = open();
    const first = states.setPending("Cell", "a", '{"n":1}', 1);
    const second = states.setPending("Cell", "a", '{"n":2}', 2);
    first();
    expect(await latestJson(states)).toBe('{"n":2}');
    await write(store, '{"n":2}');
    second();
    await write(store, '{"n":3}');
    expect(await latestJson(states)).toBe('{"n":3}');

    const third = states.setPending("Cell", "a", '{"n":4}', 3);
    const fourth = states.setPending("Cell", "a", '{"n":5}', 4);
    fourth();
    expect(() => third()).not.toThrow();
    expect(await latestJson(states)).toBe('{"n":3}');
  });

  test("a dropped write is forgotten, and the instance's epoch moves on so that a writer that read it cannot commit", async () => {
    const { store, states } = open();
    await write(store, '{"n":1}');
    const key = stateKey("Cell", "a");
    const before = states.epochOf(key);
    states.setPending("Cell", "a", '{"n":2}', 2);
    states.dropPending([key]);
    expect(states.epochOf(key)).not.toBe(before);
    expect(states.epochOf(stateKey("Cell", "b"))).toBe(before);
    expect(await latestJson(states)).toBe('{"n":1}');
    const again = states.epochOf(key);
    states.dropPending([key]);
    expect(states.epochOf(key)).not.toBe(again);
  });

  describe("watchers", () => {
    test("each watcher of an instance is told of each durable write to it, until it stops", () => {
      const { states } = open();
      const told: string[] = [];
      const stopA = states.watch(stateKey("Cell", "a"), () => told.push("a1"));
      const stopA2 = states.watch(stateKey("Cell", "a"), () => told.push("a2"));
      states.watch(stateKey("Cell", "b"), () => told.push("b"));
      const durable = states.setPending("Cell", "a", '{"n":1}', 1);
      expect(told).toEqual([]);
      durable();
      expect(told).toEqual(["a1", "a2"]);
      stopA();
      states.setPending("Cell", "a", '{"n":2}', 2)();
      expect(told).toEqual(["a1", "a2", "a2"]);
      stopA2();
      states.setPending("Cell", "a", '{"n":3}', 3)();
      expect(told).toEqual(["a1", "a2", "a2"]);
    });

    test("a stop called twice does not stop a watcher that came after", () => {
      const { states } = open();
      const told: string[] = [];
      const key = stateKey("Cell", "a");
      const stop = states.watch(key, () => told.push("first"));
      stop();
      states.watch(key, () => told.push("later"));
      stop();
      states.setPending("Cell", "a", '{"n":1}', 1)();
      expect(told).toEqual(["later"]);
    });

    test("a watcher that throws is reported as a warning; the others are still told", async () => {
      const { states } = open();
      const told: string[] = [];
      const key = stateKey("Cell", "a");
      states.watch(key, () => {
        throw new Error("the watcher broke");
      });
      states.watch(key, () => told.push("second"));
      const warnings: string[] = [];
      const onWarning = (w: Error) => warnings.push(w.message);
      process.on("warning", onWarning);
      try {
        states.setPending("Cell", "a", '{"n":1}', 1)();
        expect(told).toEqual(["second"]);
        // process.emitWarning emits on the next tick; ticks run in order, so it has by the one queued now.
        await new Promise((resolve) => process.nextTick(resolve));
        expect(warnings).toEqual(["A watcher of a state write threw: Error: the watcher broke"]);
      } finally {
        process.off("warning", onWarning);
      }
    });
  });
});
