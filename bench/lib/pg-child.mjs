// One server of the postgres benchmark: a runtime on a PostgreSQL store in a process of its
// own, as `mend serve --store URL` runs one (the app is the benchmarks' Counter and Driver).
//   node pg-child.mjs URL
// Each increment is on a Counter of its own, so that none waits for another's lock.
// Reads commands from stdin, one JSON line each; writes events to stdout, one JSON line each.
// Times are wall-clock milliseconds with sub-millisecond precision
// (performance.timeOrigin + performance.now()), comparable between processes of one machine.
//   {"cmd":"schedule","n":N,"batch":B,"prefix":"p"} → writers schedule N increments of
//       Counter(p0) … Counter(p{N-1}), B per writer; then {"scheduled":N}
//   {"cmd":"spawn","id":"x"} → spawns Counter(x).increment; then {"spawned":uuid,"t":…}
//   {"cmd":"stop"} → stops the runtime and exits
// Events: {"ready":true} once started; {"finished":count,"t":…} after tasks end (the count
// of increments this server ended, written once per turn of the event loop);
// {"started":uuid,"t":…} when an attempt of a Counter whose id starts with "lat" starts.
import { createInterface } from "node:readline";
import { Application, defineApi, Runtime, z } from "../../dist/index.js";

const { Counter, Driver } = defineApi({
  Counter: {
    state: { n: z.number().default(0) },
    methods: { increment: { kind: "writer", request: {}, response: z.void() } },
  },
  Driver: {
    state: { scheduled: z.number().default(0) },
    methods: {
      /** Schedules one increment on each of Counter(`prefix` + from) … Counter(`prefix` + (from + count - 1)). */
      scheduleMany: { kind: "writer", request: { count: z.number().int().positive(), prefix: z.string(), from: z.number().int() }, response: z.void() },
    },
  },
});

const app = new Application({
  servicers: [
    Counter.servicer({
      async increment(ctx, state) {
        state.n += 1;
      },
    }),
    Driver.servicer({
      async scheduleMany(ctx, state, req) {
        for (let i = 0; i < req.count; i++) await Counter.ref(`${req.prefix}${req.from + i}`).schedule().increment(ctx);
        state.scheduled += req.count;
      },
    }),
  ],
});

const now = () => performance.timeOrigin + performance.now();
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

const [url] = process.argv.slice(2);
const rt = await Runtime.start(app, { store: url });

let finished = 0;
let flushing = false;
rt.on("task:finished", ({ taskId }) => {
  if (taskId.stateType !== "Counter") return;
  finished++;
  if (flushing) return;
  flushing = true;
  setImmediate(() => {
    flushing = false;
    out({ finished, t: now() });
  });
});
rt.on("attempt:start", ({ taskId }) => {
  if (taskId.stateId.startsWith("lat")) out({ started: taskId.taskUuid, t: now() });
});

const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  const c = JSON.parse(line);
  void (async () => {
    if (c.cmd === "schedule") {
      const ctx = rt.context();
      for (let from = 0; from < c.n; from += c.batch)
        await Driver.ref(`driver-${c.prefix}`).scheduleMany(ctx, { count: Math.min(c.batch, c.n - from), prefix: c.prefix, from });
      out({ scheduled: c.n });
    } else if (c.cmd === "spawn") {
      const id = await rt.spawn({ stateType: "Counter", stateId: c.id, method: "increment" }, {});
      out({ spawned: id.taskUuid, t: now() });
    } else if (c.cmd === "stop") {
      await rt.stop();
      process.exit(0);
    }
  })().catch((e) => {
    process.stderr.write(`${e?.stack ?? e}\n`);
    process.exit(1);
  });
});
out({ ready: true });
