// A runtime in its own process for the scale benchmark, so that its RSS is its own:
//   node scale-child.mjs schedule DIR N BATCH   — writers schedule N tasks due in 30 days
//   node scale-child.mjs reopen DIR             — opens the store again, serves HTTP, measures list and show
// Prints one JSON line with its figures, then exits.
import { performance } from "node:perf_hooks";
import { Application, defineApi, Runtime, startServer, z } from "../../dist/index.js";

const { Counter, Planner } = defineApi({
  Counter: {
    state: { n: z.number().default(0) },
    methods: { increment: { kind: "writer", request: {}, response: z.void() } },
  },
  Planner: {
    state: { planned: z.number().default(0) },
    methods: { plan: { kind: "writer", request: { count: z.number().int().positive(), from: z.number().int() }, response: z.void() } },
  },
});

const app = new Application({
  servicers: [
    Counter.servicer({ async increment(ctx, state) { state.n += 1; } }),
    Planner.servicer({
      async plan(ctx, state, req) {
        for (let i = 0; i < req.count; i++) await Counter.ref(`c${(req.from + i) % 1000}`).schedule({ when: { days: 30 } }).increment(ctx);
        state.planned += req.count;
      },
    }),
  ],
});

const [mode, directory, n, batch] = process.argv.slice(2);
const rss = () => process.memoryUsage.rss();
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

if (mode === "schedule") {
  const rt = await Runtime.start(app, { directory });
  const ctx = rt.context();
  const total = Number(n), size = Number(batch);
  const t0 = performance.now();
  let peak = rss();
  for (let from = 0; from < total; from += size) {
    await Planner.ref("planner").plan(ctx, { count: Math.min(size, total - from), from });
    peak = Math.max(peak, rss());
  }
  const seconds = (performance.now() - t0) / 1000;
  global.gc?.();
  out({ scheduled: total, seconds, perSecond: total / seconds, rssAfter: rss(), rssPeak: peak, inMemory: rt.inMemory });
  await rt.stop();
} else if (mode === "reopen") {
  const t0 = performance.now();
  const rt = await Runtime.start(app, { directory });
  const openMs = performance.now() - t0;
  const server = await startServer(rt, { port: 0 });
  const readyMs = performance.now() - t0;
  const timed = async (path) => {
    const times = [];
    let body;
    for (let i = 0; i < 7; i++) {
      const s = performance.now();
      body = await (await fetch(`${server.url}${path}`)).json();
      times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    return { ms: times[3], body };
  };
  const list = await timed("/v1/tasks?status=SCHEDULED&limit=50");
  const byMethod = await timed("/v1/tasks?method=increment&limit=50");
  const one = list.body.tasks[25];
  const show = await timed(`/v1/tasks/${one.taskId.taskUuid}`);
  out({
    openMs, readyMs, rssAfter: rss(), inMemory: rt.inMemory,
    listMs: list.ms, listed: list.body.tasks.length, byMethodMs: byMethod.ms, showMs: show.ms, shown: show.body.task?.status,
  });
  await server.close();
  await rt.stop();
}
