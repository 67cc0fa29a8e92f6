// Builds and loads versions of an app as the runtime of `mend dev run` does (the dev
// Builder, then loadVersion), in a process of its own started with RELOADING_FLAGS and
// --expose-gc (see versions.ts). Reads one JSON command a line on stdin, answers one JSON
// line on stdout:
//   {"op":"load"}   builds, writes and loads the next version:
//                   {ok, version, compiled (modules compiled by the load), runs, error?}
//   {"op":"spares"} waits for the modules made ahead for the next version: {compiled}
//   {"op":"drop"}   forgets every version but the last, collects garbage a few times:
//                   {freed: labels of the objects the app tracked that are gone}
// The app records what its top-level code does in globalThis.__runs (returned and
// cleared by each load), reads the version being loaded from globalThis.__version, and
// may hand objects to globalThis.__track(object, label).
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { runInNewContext } from "node:vm";
import { Builder } from "../../dev/builder.js";
import { loadVersion, sparesReady } from "../../src/server/load-version.js";
import { compiledModules } from "../../src/server/vm-modules.js";

const [entry, outdir] = process.argv.slice(2) as [string, string];
const builder = new Builder(entry, outdir);
const gc = runInNewContext("gc") as () => void;
const g = globalThis as { __runs?: string[]; __version?: string; __track?: (o: object, label: string) => void };
const freed: string[] = [];
const registry = new FinalizationRegistry<string>((label) => freed.push(label));
g.__track = (o, label) => registry.register(o, label);

let next = 1;
const loaded: unknown[] = [];
const answer = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);

async function run(command: { op: string }): Promise<unknown> {
  if (command.op === "load") {
    const result = await builder.build();
    if (!result.ok) return { ok: false, error: result.message };
    const version = `v${next++}`;
    const before = compiledModules();
    g.__runs = [];
    g.__version = version;
    try {
      loaded.push(await loadVersion(builder.write(version, result)));
      return { ok: true, version, compiled: compiledModules() - before, runs: g.__runs };
    } catch (e) {
      return { ok: false, version, compiled: compiledModules() - before, runs: g.__runs, error: (e as Error).message };
    }
  }
  if (command.op === "spares") {
    const before = compiledModules();
    await sparesReady();
    return { compiled: compiledModules() - before };
  }
  if (command.op === "drop") {
    loaded.splice(0, loaded.length - 1);
    // Finalizers run after a collection, in a task of their own.
    for (let i = 0; i < 4; i++) {
      gc();
      await sleep(10);
    }
    return { freed: [...freed].sort() };
  }
  throw new Error(`unknown command ${command.op}`);
}

const lines = createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => {
  queue = queue.then(async () => void answer(await run(JSON.parse(line) as { op: string })));
});
lines.on("close", () => void queue.then(() => builder.dispose()));
