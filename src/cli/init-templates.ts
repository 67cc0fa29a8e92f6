// The files `mend init` writes: a small app (a counter with a workflow), its test, and
// the project around it. Pure: the CLI decides where they go.

/** Version ranges the new project depends on, taken from mend's own package.json. */
export interface TemplateVersions {
  mend: string;
  zod: string;
  typescript: string;
  vitest: string;
  typesNode: string;
  tsx: string;
}

/** A project name npm and `--name` both accept, made from a folder's name. */
export function projectName(folder: string): string {
  const name = folder
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[^a-z0-9]+/, "")
    .slice(0, 100)
    .replace(/[._-]+$/, "");
  return name || "mend-app";
}

function packageJson(name: string, v: TemplateVersions): string {
  const pkg = {
    name,
    version: "0.1.0",
    private: true,
    type: "module",
    scripts: {
      dev: `mend dev run --application src/main.ts --name ${name}`,
      start: `mend serve --application src/main.ts --name ${name}`,
      test: "tsc && vitest run",
      client: "tsx scripts/client.ts",
    },
    dependencies: { mend: v.mend, zod: v.zod },
    devDependencies: { "@types/node": v.typesNode, tsx: v.tsx, typescript: v.typescript, vitest: v.vitest },
    // npm 11 runs these packages' install scripts (SQLite's native binding, esbuild's binary)
    // without a warning only once the project allows them.
    allowScripts: { "better-sqlite3": true, esbuild: true },
  };
  return `${JSON.stringify(pkg, null, 2)}\n`;
}

const TSCONFIG = `{
  "compilerOptions": {
    "target": "ES2022",
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "strict": true,
    "exactOptionalPropertyTypes": true,
    "noImplicitOverride": true,
    "noUncheckedIndexedAccess": true,
    "verbatimModuleSyntax": true,
    "skipLibCheck": true,
    "noEmit": true,
    "types": ["node"]
  },
  "include": ["src", "test", "scripts"]
}
`;

const API = `import { defineApi, z } from "mend";

// The declaration: each state type's state, and per method its kind, request and response.
export const { Counter } = defineApi({
  Counter: {
    state: { count: z.number().default(0) },
    methods: {
      get: { kind: "reader", request: {}, response: { count: z.number() } },
      increment: {
        kind: "writer",
        request: { by: z.number().int().positive().default(1) },
        response: { count: z.number() },
      },
      countTo: {
        kind: "workflow",
        request: { target: z.number().int().positive() },
        response: { count: z.number() },
      },
    },
  },
});
`;

const SERVICER = `import { Counter } from "./api.js";

// The implementation. Run any method as a task: it is stored, retried until it succeeds,
// and a save in \`npm run dev\` retries a failing one at once on the new code.
export const CounterServicer = Counter.servicer({
  async get(ctx, state) {
    return { count: state.count };
  },
  async increment(ctx, state, req) {
    state.count += req.by;
    return { count: state.count };
  },
  async countTo(ctx, req) {
    // Each call is recorded: a retry of this workflow does not count twice.
    let { count } = await Counter.ref(ctx.stateId).get(ctx);
    while (count < req.target) ({ count } = await Counter.ref(ctx.stateId).increment(ctx, {}));
    return { count };
  },
});
`;

const MAIN = `import { Application } from "mend";
import { CounterServicer } from "./counter.js";

export default new Application({ servicers: [CounterServicer] });
`;

const TEST = `import { afterEach, expect, test } from "vitest";
import { Runtime } from "mend";
import { Counter } from "../src/api.js";
import app from "../src/main.js";

let runtime: Runtime | undefined;
afterEach(async () => {
  await runtime?.stop();
  runtime = undefined;
});

test("increment adds to the count", async () => {
  runtime = await Runtime.start(app); // a temporary store, removed on stop
  const ctx = runtime.context();
  await Counter.ref("a").increment(ctx, { by: 2 });
  expect(await Counter.ref("a").get(ctx)).toEqual({ count: 2 });
});

test("countTo runs as a task", async () => {
  runtime = await Runtime.start(app);
  const ctx = runtime.context();
  const { task } = await Counter.ref("b").spawn().countTo(ctx, { target: 3 });
  expect(await task).toEqual({ count: 3 });
});
`;

function client(): string {
  return `// Calls the running app (npm run dev) from outside: npm run client
import { ExternalContext } from "mend";
import { Counter } from "../src/api.js";

const ctx = new ExternalContext({ url: process.env.MEND_URL ?? "http://127.0.0.1:9991" });
const { task } = await Counter.ref("c").spawn().countTo(ctx, { target: 5 });
console.log(await task);
`;
}

const GITIGNORE = `node_modules/
# mend's state: the SQLite store and build output of \`mend dev run\` and \`mend serve\`.
.mend/
`;

/** Every file of a new project, by its path in the project. */
export function initFiles(name: string, versions: TemplateVersions): Map<string, string> {
  return new Map([
    ["package.json", packageJson(name, versions)],
    ["tsconfig.json", TSCONFIG],
    [".gitignore", GITIGNORE],
    ["src/api.ts", API],
    ["src/counter.ts", SERVICER],
    ["src/main.ts", MAIN],
    ["test/counter.test.ts", TEST],
    ["scripts/client.ts", client()],
  ]);
}
