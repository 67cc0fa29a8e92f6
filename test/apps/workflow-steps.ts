// A small app for the tests of a workflow's steps (test/workflow-steps.test.ts,
// test/workflow-context.test.ts): each test gives the body of `Job.run`, in-process.
import { Application, defineApi, z, type RetryPolicy, type WorkflowContext } from "mend";

export const { Cell, Ledger, Job, Big } = defineApi({
  Cell: {
    state: { n: z.number().default(0) },
    methods: {
      add: { kind: "writer", request: { by: z.number().default(1) }, response: { n: z.number() } },
      get: { kind: "reader", request: {}, response: { n: z.number() } },
      take: {
        kind: "writer",
        request: { by: z.number() },
        response: { n: z.number() },
        errors: [z.object({ type: z.literal("TooLittle"), n: z.number() })],
      },
    },
  },
  Ledger: {
    state: { owner: z.string(), kind: z.string().default("open") },
    methods: {
      open: { kind: "writer", factory: {}, request: { owner: z.string() }, response: { owner: z.string() } },
      openEmpty: { kind: "writer", factory: {}, request: {}, response: { owner: z.string() } },
    },
  },
  /** A state whose defaults alone are 2 kB as JSON. */
  Big: {
    state: { text: z.string().default("x".repeat(2_000)) },
    methods: { size: { kind: "reader", request: {}, response: { length: z.number() } } },
  },
  Job: {
    state: {},
    methods: {
      /** Runs the body the test gives. */
      run: { kind: "workflow", request: {}, response: { value: z.unknown() } },
      /** Counts its runs in `children` and answers with its tag. */
      child: { kind: "workflow", request: { tag: z.string().default("") }, response: { tag: z.string() } },
    },
  },
});

export type Body = (ctx: WorkflowContext) => Promise<unknown>;

/** The app whose `Job.run` is `body`; `children` lists the tag of each run of `Job.child`. */
export function stepsApp(body: Body, options: { retry?: Partial<RetryPolicy>; children?: string[] } = {}): Application {
  return new Application({
    retry: options.retry,
    servicers: [
      Cell.servicer({
        async add(ctx, state, req) {
          state.n += req.by;
          return { n: state.n };
        },
        async get(ctx, state) {
          return { n: state.n };
        },
        async take(ctx, state, req) {
          if (state.n < req.by) throw new Cell.TakeAborted({ type: "TooLittle", n: state.n }, { message: `only ${state.n}` });
          state.n -= req.by;
          return { n: state.n };
        },
      }),
      Ledger.servicer({
        async open(ctx, state, req) {
          state.owner = req.owner;
          return { owner: state.owner };
        },
        async openEmpty(ctx, state) {
          state.owner = "";
          state.kind = "empty";
          return { owner: "" };
        },
      }),
      Big.servicer({
        async size(ctx, state) {
          return { length: state.text.length };
        },
      }),
      Job.servicer({
        async run(ctx) {
          return { value: await body(ctx) };
        },
        async child(ctx, req) {
          options.children?.push(req.tag);
          return { tag: req.tag };
        },
      }),
    ],
  });
}
