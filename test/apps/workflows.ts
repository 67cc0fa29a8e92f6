// Workflows for the idempotency tests. Each test decides what happens at the named points
// of the code (`at`): count, fail like a bug, or hold on a gate file so that a test can
// kill the process there. The default export, run in a child process, prints each point
// as a JSON line and holds while the point's gate file exists.
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Application, atLeastOnce, atMostOnce, defineApi, until, z, type RetryPolicy } from "mend";

const helper = z.enum(["atLeastOnce", "atMostOnce"]);

export const { Shop, Flow } = defineApi({
  Shop: {
    state: { charges: z.array(z.number()).default([]), log: z.array(z.string()).default([]) },
    methods: {
      charge: { kind: "writer", request: { amount: z.number() }, response: { charges: z.number() } },
      refund: {
        kind: "writer",
        request: { amount: z.number() },
        response: z.void(),
        errors: [z.object({ type: z.literal("NothingToRefund"), amount: z.number() })],
      },
      note: { kind: "writer", request: { line: z.string() }, response: z.void() },
      /** Charges, and schedules a note about it. */
      order: { kind: "writer", request: { amount: z.number() }, response: z.void() },
      get: { kind: "reader", request: {}, response: { charges: z.array(z.number()), log: z.array(z.string()) } },
    },
  },
  Flow: {
    state: {},
    methods: {
      /** Charges, then emails the receipt with `helper`. */
      checkout: { kind: "workflow", request: { amount: z.number(), helper }, response: { receipt: z.string() } },
      /** Sends once with `helper`, holding on `gate` inside `fn`. */
      once: { kind: "workflow", request: { helper, gate: z.string().default("") }, response: { value: z.string() } },
      /** A loop that notes each iteration; iteration `blockAt` holds on `gate`. */
      poll: {
        kind: "workflow",
        request: { iterations: z.number(), intervalMs: z.number().default(0), blockAt: z.number().default(-1), gate: z.string().default("") },
        response: { iterations: z.number() },
      },
      /** Spawns `child` and awaits it. */
      parent: { kind: "workflow", request: { gate: z.string().default("") }, response: { child: z.string() } },
      child: { kind: "workflow", request: { gate: z.string().default("") }, response: { value: z.string() } },
      /** Waits until the shop's log has a line. */
      ready: { kind: "workflow", request: {}, response: { line: z.string() } },
    },
  },
});

export type At = (point: string, detail: { gate?: string; [key: string]: unknown }) => void | Promise<void>;
type FlowImpl = Parameters<typeof Flow.servicer>[0];

/** Prints the point as a JSON line, then holds while its gate file exists. */
const report: At = async (point, detail) => {
  process.stdout.write(`${JSON.stringify({ event: "at", point, ...detail })}\n`);
  while (detail.gate && existsSync(detail.gate)) await sleep(5);
};

export function shopServicer(at: At) {
  return Shop.servicer({
    async charge(ctx, state, req) {
      await at("charge", { amount: req.amount });
      state.charges.push(req.amount);
      return { charges: state.charges.length };
    },
    async refund(ctx, state, req) {
      await at("refund", { amount: req.amount });
      if (!state.charges.includes(req.amount)) throw new Shop.RefundAborted({ type: "NothingToRefund", amount: req.amount });
      state.charges.push(-req.amount);
    },
    async note(ctx, state, req) {
      state.log.push(req.line);
    },
    async order(ctx, state, req) {
      await at("order", { amount: req.amount });
      state.charges.push(req.amount);
      await Shop.ref(ctx.stateId).schedule().note(ctx, { line: `ordered ${req.amount}` });
    },
    async get(ctx, state) {
      return { charges: state.charges, log: state.log };
    },
  });
}

export function flowServicer(at: At, overrides: Partial<FlowImpl> = {}) {
  return Flow.servicer({
    async checkout(ctx, req) {
      await Shop.ref("s").charge(ctx, { amount: req.amount });
      await at("render", {});
      const send = req.helper === "atLeastOnce" ? atLeastOnce : atMostOnce;
      const receipt = await send("email", ctx, async () => {
        await at("email", {});
        return `receipt for ${req.amount}`;
      });
      return { receipt };
    },
    async once(ctx, req) {
      const run = req.helper === "atLeastOnce" ? atLeastOnce : atMostOnce;
      const value = await run("send", ctx, async () => {
        await at("send", { gate: req.gate });
        return "sent";
      });
      await at("after-send", {});
      return { value };
    },
    async poll(ctx, req) {
      let done = 0;
      for await (const i of ctx.loop("poll", { interval: { ms: req.intervalMs } })) {
        await Shop.ref("s").note(ctx, { line: `iteration ${i}` });
        await at("iteration", { i, gate: i === req.blockAt ? req.gate : "" });
        done = i + 1;
        if (done >= req.iterations) break;
      }
      return { iterations: done };
    },
    async parent(ctx, req) {
      const { task } = await Flow.ref("child").spawn().child(ctx, { gate: req.gate });
      await at("spawned", { taskUuid: task.taskId.taskUuid });
      const { value } = await task;
      return { child: value };
    },
    async child(ctx, req) {
      await at("child", { gate: req.gate });
      return { value: "from child" };
    },
    async ready(ctx) {
      const line = await until("ready", ctx, async () => {
        await at("check", {});
        return (await Shop.ref("s").get(ctx)).log[0];
      });
      await at("after-until", {});
      return { line };
    },
    ...overrides,
  });
}

export function app(at: At = report, options: { retry?: Partial<RetryPolicy>; flow?: Partial<FlowImpl> } = {}) {
  return new Application({ servicers: [shopServicer(at), flowServicer(at, options.flow)], retry: options.retry });
}

export default app();
