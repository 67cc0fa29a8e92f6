// The app of test/reboot*.test.ts: Reboot's semantics (constructors, nested transactions,
// declared errors through callers, authorizers, workflow reads and writes). Each test says
// what happens at the named points of the code (`at`): count, or fail like a bug.
import { allow, Application, deny, until, z, type ApplicationOptions } from "mend";
import { Cell, Flow, Guarded, Ledger, Relay, Tx } from "./api.js";

export type At = (point: string, detail?: Record<string, unknown>) => void;

export function app(at: At = () => {}, options: Partial<ApplicationOptions> = {}) {
  const addAll = async (ctx: Parameters<Parameters<typeof Tx.servicer>[0]["inner"]>[0], cells: string[]) => {
    for (const cell of cells) await Cell.ref(cell).add(ctx);
  };
  return new Application({
    tokenVerifier: (token) => (token === "t-admin" ? { userId: "admin-user" } : token === "t-bob" ? { userId: "bob" } : undefined),
    ...options,
    servicers: [
      Ledger.servicer({
        async open(ctx, state, req) {
          at("open", { id: ctx.stateId });
          if (req.owner) state.owner = req.owner;
          return { opened: ctx.stateId };
        },
        async add(ctx, state, req) {
          state.entries.push(req.n);
          return { total: state.entries.reduce((a, b) => a + b, 0) };
        },
        async total(ctx, state) {
          return { owner: state.owner, total: state.entries.reduce((a, b) => a + b, 0) };
        },
      }),
      Cell.servicer({
        async add(ctx, state, req) {
          at("add", { id: ctx.stateId });
          state.n += req.by;
          return { n: state.n };
        },
        async get(ctx, state) {
          return { n: state.n };
        },
      }),
      Tx.servicer({
        async fanout(ctx, state, req) {
          state.runs += 1;
          await Tx.ref("inner").inner(ctx, { cells: req.cells });
          if (req.fail) throw new Error("the outer transaction fails after its nested one");
        },
        async inner(ctx, state, req) {
          state.runs += 1;
          await addAll(ctx, req.cells);
          if (req.refuse) throw new Tx.InnerAborted({ type: "Refused", by: "inner" });
        },
        async tolerant(ctx, state, req) {
          try {
            await Tx.ref("inner").inner(ctx, { cells: req.cells, refuse: true });
          } catch (e) {
            if (!(e instanceof Tx.InnerAborted)) throw e;
          }
          await Cell.ref(req.kept).add(ctx);
        },
        async pass(ctx, state, req) {
          await Tx.ref("inner").inner(ctx, { cells: req.cells, refuse: true });
        },
        async nopass(ctx, state, req) {
          await Tx.ref("inner").inner(ctx, { cells: req.cells, refuse: true });
        },
      }),
      Guarded.servicer({
        authorizer: ({ auth, method }) => {
          if (method === "get" || auth?.userId === "admin-user") return allow();
          if (auth?.userId === "bob") return new Error("bob may only read");
          return deny(`only admin-user may call Guarded.${method}`);
        },
        async get(ctx, state) {
          return { n: state.n, userId: ctx.auth?.userId ?? null };
        },
        async set(ctx, state, req) {
          state.n = req.n;
        },
        async later() {
          return { done: true };
        },
      }),
      Relay.servicer({
        async relay(ctx, state, req) {
          await Guarded.ref(req.id).set(ctx, { n: req.n });
        },
      }),
      Flow.servicer({
        async readWrite(ctx, req) {
          const { n: before } = await Cell.ref(req.cell).read(ctx);
          const after = await Cell.ref(req.cell).idempotently("bump").write(ctx, async (state) => {
            at("write");
            state.n += 10;
            return state.n;
          });
          at("after-write");
          return { before, after };
        },
        async modes(ctx) {
          for await (const i of ctx.loop("three")) {
            await Cell.ref("per-workflow").perWorkflow("once").add(ctx);
            await Cell.ref("always").always().add(ctx);
            await Cell.ref("each").idempotently("each").add(ctx);
            at("iteration", { i });
            if (i === 2) break;
          }
        },
        async waitFor(ctx, req) {
          return until(
            "enough",
            ctx,
            async () => {
              at("check");
              const { n } = await Cell.ref(req.cell).get(ctx);
              return n >= req.atLeast && { n };
            },
            { maxInterval: { hours: 1 }, schema: z.object({ n: z.number() }) },
          );
        },
        async badUntil(ctx) {
          await until("typed", ctx, async () => ({ n: 1 }), { schema: z.object({ n: z.string() }) });
        },
        async makeLedger(ctx) {
          const [ledger] = await Ledger.open(ctx, { owner: "workflow" });
          at("made", { id: ledger.stateId });
          const [again] = await Ledger.perWorkflow("second").open(ctx, { owner: "workflow" });
          return { id: ledger.stateId, again: again.stateId };
        },
      }),
    ],
  });
}

export default app();
