import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * A generated app of ~50 files / ~5k lines: one entry (src/main.ts, which reads
 * src/settings.json with top-level await and import.meta), a declaration, a
 * servicer, 45 library modules that import one another, and src/billing/currency.ts, the
 * file with the bug. `Ledger.reconcile({ currency })` fails with "Unknown currency" until
 * that currency is in the table; it retries only once a minute, so only a reload can run
 * it again soon.
 */
export const MODULES = 45;
const FUNCTIONS = 8;

export interface GeneratedApp {
  dir: string;
  /** The file whose fix each save writes. */
  bugFile: string;
  /** A leaf module whose constant the memory benchmark changes on each save. */
  leafFile: string;
  files: number;
  lines: number;
}

/** The currency the k-th hotfix save adds. */
export const currencyOf = (k: number): string => `C${String(k).padStart(3, "0")}`;

/** src/billing/currency.ts knowing USD, EUR, GBP and the currencies of saves 0..known-1. */
export function currencyFile(known: number): string {
  const entries = Array.from({ length: known }, (_, k) => `  ${currencyOf(k)}: "¤${k}",\n`).join("");
  return `// The currency table: a currency missing from it makes every reconcile of it fail.
const SYMBOLS: Record<string, string> = {
  USD: "$",
  EUR: "€",
  GBP: "£",
${entries}};

export function symbolFor(currency: string): string {
  const symbol = SYMBOLS[currency];
  if (!symbol) throw new Error(\`Unknown currency '\${currency}'\`);
  return symbol;
}

export function knownCurrencies(): string[] {
  return Object.keys(SYMBOLS).sort();
}
`;
}

/** Module numbers as file names use them: wide enough for the largest. */
let width = 2;
const pad = (i: number) => String(i).padStart(width, "0");

/** Library module i: ten functions, a table of them, and imports of two earlier modules. */
export function moduleFile(i: number, revision = 0, modules = MODULES): string {
  const deps = i === 0 ? [] : [...new Set([i - 1, Math.floor(i / 2)])];
  const imports = deps.map((d) => `import { f${pad(d)}_0, table${pad(d)} } from "./m${pad(d)}.js";\n`).join("");
  const fns: string[] = [];
  for (let f = 0; f < FUNCTIONS; f++) {
    const chain = f === 0 && i > 0 ? `acc = (acc + f${pad(i - 1)}_0(xs.slice(0, 2), seed + 1)) % 1_000_003;` : `acc = (acc * ${f + 3}) % 1_000_003;`;
    fns.push(`/** Step ${f} of module ${i}: folds the inputs into a checksum. */
export function f${pad(i)}_${f}(xs: readonly number[], seed: number): number {
  let acc = (seed * ${31 + f} + ${i * FUNCTIONS + f}) % 1_000_003;
  for (const x of xs) {
    acc = (acc * 33 + Math.floor(x)) % 1_000_003;
    if (acc < 0) acc += 1_000_003;
  }
  ${chain}
  return acc;
}
`);
  }
  const others = deps.map((d) => `  ...Object.keys(table${pad(d)}).map((k) => \`m${pad(d)}.\${k}\`),\n`).join("");
  return `// Generated library module ${i} of ${modules}.
${imports}
export const REVISION_${pad(i)} = ${revision};

${fns.join("\n")}
export const table${pad(i)} = {
${Array.from({ length: FUNCTIONS }, (_, f) => `  f${pad(i)}_${f},\n`).join("")}  revision: () => REVISION_${pad(i)},
};

/** Names of every function this module can reach. */
export function reach${pad(i)}(): string[] {
  return [
    ...Object.keys(table${pad(i)}),
${others}  ];
}
`;
}

const API = `import { defineApi, z } from "mend";

export const { Ledger } = defineApi({
  Ledger: {
    state: { runs: z.number().default(0) },
    methods: {
      reconcile: {
        kind: "workflow",
        request: { currency: z.string() },
        response: { text: z.string() },
        // Only a reload retries it soon: the next retry is a minute away.
        retry: { initialMs: 60_000, maxMs: 60_000, jitter: false },
      },
      touch: { kind: "writer", request: {}, response: { runs: z.number() } },
    },
  },
});
`;

const SERVICER = `import { Ledger } from "./api.js";
import { symbolFor } from "./billing/currency.js";
import { checksum, moduleCount } from "./lib/index.js";

export const LedgerServicer = Ledger.servicer({
  async reconcile(ctx, req) {
    const sum = checksum([1, 2, 3], 7);
    return { text: \`\${symbolFor(req.currency)} \${sum} over \${moduleCount()} modules\` };
  },
  async touch(ctx, state) {
    state.runs += 1;
    return { runs: state.runs };
  },
});
`;

// The entry uses what ES modules allow under Node: top-level await, and import.meta to
// read a file next to its source. Every reload evaluates it again.
const MAIN = `import { readFile } from "node:fs/promises";
import { Application } from "mend";
import { LedgerServicer } from "./ledger.js";

const settings = JSON.parse(await readFile(new URL("./settings.json", import.meta.url), "utf8")) as { name: string };
if (settings.name !== "ledger") throw new Error("src/settings.json was not read");

export default new Application({ servicers: [LedgerServicer] });
`;

function indexFile(modules: number): string {
  const ids = Array.from({ length: modules }, (_, i) => pad(i));
  return `// Every library module, reachable from the servicer.
${ids.map((i) => `import { f${i}_0, reach${i}, table${i} } from "./m${i}.js";`).join("\n")}

const TABLES = [${ids.map((i) => `table${i}`).join(", ")}];
const REACH = [${ids.map((i) => `reach${i}`).join(", ")}];

export function moduleCount(): number {
  return TABLES.length + REACH.length * 0;
}

export function checksum(xs: readonly number[], seed: number): number {
  return (f${pad(modules - 1)}_0(xs, seed) + f${pad(0)}_0(xs, seed)) % 1_000_003;
}
`;
}

/** `modules` library modules: 45 gives the ~5,000-line app, 495 one ten times larger. */
export function generateApp(dir: string, modules = MODULES): GeneratedApp {
  width = String(modules - 1).length < 2 ? 2 : String(modules - 1).length;
  const files = new Map<string, string>([
    ["src/main.ts", MAIN],
    ["src/settings.json", '{ "name": "ledger" }\n'],
    ["src/api.ts", API],
    ["src/ledger.ts", SERVICER],
    ["src/billing/currency.ts", currencyFile(0)],
    ["src/lib/index.ts", indexFile(modules)],
  ]);
  for (let i = 0; i < modules; i++) files.set(`src/lib/m${pad(i)}.ts`, moduleFile(i, 0, modules));
  let lines = 0;
  for (const [path, text] of files) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
    lines += text.split("\n").length - 1;
  }
  return { dir, bugFile: join(dir, "src/billing/currency.ts"), leafFile: join(dir, `src/lib/m${pad(modules - 1)}.ts`), files: files.size, lines };
}
