// A client in a process of its own: node client-script.mjs URL SEED ALIAS BY. Calls Cell.add
// idempotently through an ExternalContext and prints the response as one JSON line.
import { defineApi, ExternalContext, z } from "../../dist/index.js";

const [url, seed, alias, by] = process.argv.slice(2);
const { Cell } = defineApi({
  Cell: {
    state: { n: z.number().default(0) },
    methods: { add: { kind: "writer", request: { by: z.number().default(1) }, response: { n: z.number() } } },
  },
});
const ctx = new ExternalContext({ url, idempotencySeed: seed });
const response = await Cell.ref("shared").idempotently(alias).add(ctx, { by: Number(by) });
process.stdout.write(`${JSON.stringify({ pid: process.pid, response })}\n`);
