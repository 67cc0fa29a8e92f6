// Stack traces in processes that load apps (src/server/stacks.ts): which frames stay,
// how a bundle's frame is mapped to its source, and how long a version's map is kept.
import { transform } from "esbuild";
import { setTimeout as sleep } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, test } from "vitest";
import {
  framesToKeep,
  hasSourceMap,
  isInternalFile,
  keepSourceMapsWhile,
  keepSourceMapWhile,
  prepareStackTrace,
  registeredMaps,
  registerSourceMap,
  registerSourceMaps,
} from "../src/server/stacks.js";

const OWN = ["file:///app/node_modules/mend/dist/", "/app/node_modules/mend/dist/"];
const internal = (f: string) => isInternalFile(f, OWN);

describe("which frames a stack keeps", () => {
  test("mend's own files and Node's internals are left out", () => {
    expect(internal("file:///app/node_modules/mend/dist/chunk-ABC.js")).toBe(true);
    expect(internal("/app/node_modules/mend/dist/cli.js")).toBe(true);
    expect(internal("node:internal/process/task_queues")).toBe(true);
    expect(internal("node:async_hooks")).toBe(true);
    expect(internal("node:fs")).toBe(false);
    expect(internal("/app/src/format.ts")).toBe(false);
    expect(internal("file:///app/node_modules/zod/index.js")).toBe(false);
  });

  test("a builtin goes with the frame that called it", () => {
    const mend = "/app/node_modules/mend/dist/chunk.js";
    // user → Array.map (builtin) → user → mend → Promise (builtin, called by mend) → mend
    expect(framesToKeep(["/app/src/a.ts", undefined, "/app/src/b.ts", mend, undefined, mend], internal)).toEqual([true, true, true, false, false, false]);
  });

  test("a stack made only of mend's frames is kept whole", () => {
    expect(framesToKeep(["node:internal/x", "/app/node_modules/mend/dist/chunk.js", undefined], internal)).toEqual([true, true, true]);
  });
});

/** A CallSite as V8 hands them to prepareStackTrace, for a frame at `file:line:column`. */
function site(file: string, line: number, column: number, name: string | null, extra: Partial<NodeJS.CallSite> = {}): NodeJS.CallSite {
  const location = `${file}:${line}:${column}`;
  return {
    getFileName: () => file,
    getEvalOrigin: () => undefined,
    getLineNumber: () => line,
    getColumnNumber: () => column,
    getEnclosingLineNumber: () => null,
    getEnclosingColumnNumber: () => null,
    getFunctionName: () => name,
    getMethodName: () => null,
    getTypeName: () => null,
    isAsync: () => false,
    isConstructor: () => false,
    toString: () => (name ? `${name} (${location})` : location),
    ...extra,
  } as unknown as NodeJS.CallSite;
}

describe("mapping a bundle's frames", () => {
  test("a frame of a registered bundle points at its source line; others are left as V8 prints them", async () => {
    const source = ["// a comment", "export function makeLabel(n: number): string {", "  const label: string = undefinedThing(n);", "  return label;", "}"].join("\n");
    const out = await transform(source, { loader: "ts", sourcemap: "external", sourcefile: "../src/labels.ts", format: "esm" });
    const bundle = "file:///app/.mend/x/build/1/v7.mjs";
    registerSourceMap(bundle, out.map);
    const generated = out.code.split("\n").findIndex((l) => l.includes("undefinedThing"));
    const column = out.code.split("\n")[generated]!.indexOf("undefinedThing") + 1;
    const error = new Error("boom");
    const stack = prepareStackTrace(error, [
      site(bundle, generated + 1, column, "makeLabel"),
      site("/app/node_modules/other/index.js", 3, 9, "helper"),
      site("file:///work/whatever/node_modules/mend/dist/chunk.js", 1, 1, "Memo.within", { getFileName: () => "node:internal/x" }),
    ]);
    expect(stack.split("\n")).toEqual([
      "Error: boom",
      // Sources are relative to the bundle: ../src/labels.ts of .mend/x/build/1/ is /app/.mend/x/build/src/labels.ts.
      "    at makeLabel (/app/.mend/x/build/src/labels.ts:3:25)",
      "    at helper (/app/node_modules/other/index.js:3:9)",
    ]);
  });

  test("the header is the error's own, with a Node error's code", () => {
    class Custom extends Error {
      override name = "Custom";
    }
    expect(prepareStackTrace(new Custom("odd"), [])).toBe("Custom: odd");
    let nodeError: unknown;
    try {
      Buffer.alloc(-1);
    } catch (e) {
      nodeError = e;
    }
    expect(prepareStackTrace(nodeError, [])).toMatch(/^RangeError \[ERR_OUT_OF_RANGE\]: /);
  });
});

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const collect = async () => {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(10);
  }
};

describe("how long a version's map is kept", () => {
  test("while its application lives, or while it is one of the last four; then it goes", async () => {
    const map = JSON.stringify({ version: 3, sources: ["a.ts"], names: [], mappings: "AAAA" });
    const held = () => registeredMaps().filter((u) => u.startsWith("file:///lifetime/")).map((u) => u.slice("file:///lifetime/".length));
    let apps: object[] = [];
    for (let v = 0; v < 10; v++) {
      const bundle = `file:///lifetime/v${v}.mjs`;
      registerSourceMap(bundle, map);
      const app = { version: v };
      apps.push(app);
      keepSourceMapWhile(bundle, [app]);
    }
    await collect();
    expect(held()).toHaveLength(10);
    // Only v9's application is still held: v6's map and those before it go.
    apps = apps.slice(-1);
    await collect();
    registerSourceMap("file:///lifetime/next.mjs", map);
    expect(held()).toEqual(["v7.mjs", "v8.mjs", "v9.mjs", "next.mjs"]);
    expect(apps).toHaveLength(1);
  });
});

describe("maps of versions made of one module per file", () => {
  test("a file unchanged between versions shares its map, kept while any version that has it is held", async () => {
    const map = JSON.stringify({ version: 3, sources: ["a.ts"], names: [], mappings: "AAAA" });
    const base = "file:///shared/src/";
    const held = () => registeredMaps().filter((u) => u.startsWith(base)).map((u) => u.slice(base.length));
    let app1: object | undefined = {};
    let app2: object | undefined = {};
    registerSourceMaps("file:///shared/v1.json", [`${base}a.ts?1`, `${base}b.ts?1`], [[`${base}a.ts?1`, map], [`${base}b.ts?1`, map]]);
    keepSourceMapsWhile("file:///shared/v1.json", [app1]);
    // v2 changed b.ts only: a.ts's map is not read again.
    expect(hasSourceMap(`${base}a.ts?1`)).toBe(true);
    registerSourceMaps("file:///shared/v2.json", [`${base}a.ts?1`, `${base}b.ts?2`], [[`${base}b.ts?2`, map]]);
    keepSourceMapsWhile("file:///shared/v2.json", [app2]);
    // Four later versions: v1 and v2 stay only for their applications.
    for (let v = 3; v <= 6; v++) registerSourceMaps(`file:///shared/v${v}.json`, [`${base}c.ts?${v}`], [[`${base}c.ts?${v}`, map]]);
    expect(held()).toEqual(["a.ts?1", "b.ts?1", "b.ts?2", "c.ts?3", "c.ts?4", "c.ts?5", "c.ts?6"]);

    app1 = undefined;
    await collect();
    registerSourceMaps("file:///shared/v7.json", [`${base}c.ts?7`], [[`${base}c.ts?7`, map]]);
    // a.ts's map is v2's too.
    expect(held()).toEqual(["a.ts?1", "b.ts?2", "c.ts?4", "c.ts?5", "c.ts?6", "c.ts?7"]);

    app2 = undefined;
    await collect();
    registerSourceMaps("file:///shared/v8.json", [`${base}c.ts?8`], [[`${base}c.ts?8`, map]]);
    expect(held()).toEqual(["c.ts?5", "c.ts?6", "c.ts?7", "c.ts?8"]);
    expect([app1, app2]).toEqual([undefined, undefined]);
  });
});
