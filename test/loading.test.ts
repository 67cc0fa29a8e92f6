// Building an app (src/server/build.ts, app-plugin.ts) and the dev Builder around esbuild.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, test } from "vitest";
import { Builder, isServiceGone, type BuildResult } from "../dev/builder.js";
import { needsGraph, resolutionOf, specifiersOf, statKey } from "../dev/module-graph.js";
import { importMetaPrefix, isPackageFile, packageKey, withImportMeta } from "../src/server/app-plugin.js";
import { buildApp } from "../src/server/build.js";
import { resolveFrom } from "../src/server/shared.js";
import { modulesToMake, parseManifest, targetOf, type VersionManifest } from "../src/server/version-manifest.js";
import { tempDir } from "./helpers/temp.js";

describe("import.meta per file", () => {
  test("declared on the file's first line, after a #! line if there is one", () => {
    const prefix = importMetaPrefix("/app/src/a.ts");
    expect(prefix).toContain('url: "file:///app/src/a.ts"');
    expect(prefix).toContain('dirname: "/app/src", filename: "/app/src/a.ts"');
    expect(prefix).not.toContain("\n");
    expect(withImportMeta("export const a = 1;\n", "/app/src/a.ts")).toBe(`${prefix}export const a = 1;\n`);
    expect(withImportMeta("#!/usr/bin/env node\nrun();\n", "/app/src/a.ts")).toBe(`#!/usr/bin/env node\n${prefix}run();\n`);
  });

  test("each file of a bundle sees its own import.meta, as under Node", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "src/lib"), { recursive: true });
    writeFileSync(join(dir, "src/lib/b.ts"), "export const b = [import.meta.url, import.meta.dirname, import.meta.filename];\n");
    writeFileSync(
      join(dir, "src/a.ts"),
      'import { b } from "./lib/b.js";\nconst { url } = import.meta;\nexport const a = [url, import.meta.dirname, import.meta.filename];\nexport { b };\n',
    );
    const bundle = await buildApp(join(dir, "src/a.ts"), join(dir, "out"));
    const { a, b } = (await import(pathToFileURL(bundle).href)) as { a: string[]; b: string[] };
    expect(a).toEqual([pathToFileURL(join(dir, "src/a.ts")).href, join(dir, "src"), join(dir, "src/a.ts")]);
    expect(b).toEqual([pathToFileURL(join(dir, "src/lib/b.ts")).href, join(dir, "src/lib"), join(dir, "src/lib/b.ts")]);
  });

  test("import.meta.resolve: paths and URLs from the file, builtins by name, packages from the project", () => {
    expect(resolveFrom("./data.json", "file:///app/src/a.ts")).toBe("file:///app/src/data.json");
    expect(resolveFrom("../x.js", "file:///app/src/a.ts")).toBe("file:///app/x.js");
    expect(resolveFrom("fs", "file:///app/src/a.ts")).toBe("node:fs");
    expect(resolveFrom("node:path", "file:///app/src/a.ts")).toBe("node:path");
    expect(resolveFrom("https://example.com/a.js", "file:///app/src/a.ts")).toBe("https://example.com/a.js");
    expect(resolveFrom("zod", "file:///app/src/a.ts")).toMatch(/^file:\/\/.*\/node_modules\/zod\/.+\.js$/);
  });

  test("packages are imported by their files' URLs, builtins by name", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "node_modules/dep"), { recursive: true });
    writeFileSync(join(dir, "node_modules/dep/package.json"), JSON.stringify({ name: "dep", type: "module", exports: { import: "./esm.js", require: "./cjs.cjs" } }));
    writeFileSync(join(dir, "node_modules/dep/esm.js"), "export const kind = 'esm';\n");
    writeFileSync(join(dir, "node_modules/dep/cjs.cjs"), "exports.kind = 'cjs';\n");
    writeFileSync(join(dir, "a.ts"), 'import { kind } from "dep";\nimport { sep } from "node:path";\nexport { kind, sep };\n');
    const bundle = await buildApp(join(dir, "a.ts"), join(dir, "out"));
    const text = readFileSync(bundle, "utf8");
    expect(text).toContain(`from "${pathToFileURL(join(dir, "node_modules/dep/esm.js")).href}"`);
    expect(text).toContain('from "node:path"');
    expect(isPackageFile(join(dir, "node_modules/dep/esm.js"))).toBe(true);
    expect(isPackageFile(join(dir, "a.ts"))).toBe(false);
  });
});

/** The esbuild service processes this process started (Linux: read from /proc). */
function esbuildChildren(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (comm === "esbuild" && ppid === process.pid) pids.push(Number(name));
    } catch {
      // The process went away while we read.
    }
  }
  return pids;
}

describe("the dev Builder", () => {
  test.runIf(process.platform === "linux")("starts esbuild's service again when it has died", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "main.ts"), "export const n: number = 1;\n");
    const builder = new Builder(join(dir, "main.ts"), join(dir, "out"));
    try {
      const first = await builder.build();
      expect(first.ok).toBe(true);
      const service = esbuildChildren();
      expect(service.length).toBeGreaterThan(0);
      for (const pid of service) process.kill(pid, "SIGKILL");
      writeFileSync(join(dir, "main.ts"), "export const n: number = 2;\n");
      const second = await builder.build();
      expect(second).toMatchObject({ ok: true });
      expect(second.ok && second.modules.map((m) => m.code).join("\n")).toContain("n = 2");
      expect(esbuildChildren().some((pid) => !service.includes(pid))).toBe(true);
    } finally {
      await builder.dispose();
    }
  });

  test("recognises esbuild's answers once its service is gone", () => {
    expect(isServiceGone(new Error("The service was stopped: write EPIPE"))).toBe(true);
    expect(isServiceGone(new Error("The service is no longer running"))).toBe(true);
    expect(isServiceGone(new Error("Build failed with 1 error"))).toBe(false);
  });
});

/** A temp app: src/main.ts imports ./a.js and ./b.js, a.ts imports ./b.js, b.ts imports nothing of the app. */
function smallApp(): { dir: string; file: (name: string, text?: string) => string } {
  const dir = tempDir();
  mkdirSync(join(dir, "src"));
  const file = (name: string, text?: string) => {
    const path = join(dir, "src", name);
    if (text !== undefined) writeFileSync(path, text);
    return path;
  };
  file("main.ts", 'import { Application } from "mend";\nimport { a } from "./a.js";\nimport { b } from "./b.js";\nexport default new Application({ servicers: [] });\nexport { a, b };\n');
  file("a.ts", 'import { b } from "./b.js";\nexport const a = () => b + 1;\n');
  file("b.ts", 'import { sep } from "node:path";\nexport const b: number = sep.length;\n');
  return { dir, file };
}

function ok(result: BuildResult): Extract<BuildResult, { ok: true }> {
  if (!result.ok) throw new Error(`the build failed: ${result.message}`);
  return result;
}

const names = (files: string[], dir: string) => files.map((f) => f.slice(join(dir, "src/").length)).sort();

describe("the dev Builder, file by file", () => {
  test("a save rebuilds only the file it changed; the graph only when a file's imports change", async () => {
    const { dir, file } = smallApp();
    const builder = new Builder(file("main.ts"), join(dir, "out"));
    try {
      const first = ok(await builder.build());
      expect([names(first.compiled, dir), first.graph]).toEqual([["a.ts", "b.ts", "main.ts"], true]);
      expect(names(first.inputs, dir)).toEqual(["a.ts", "b.ts", "main.ts"]);

      // Nothing changed: nothing is compiled, every module is the same.
      const same = ok(await builder.build());
      expect([same.compiled, same.graph]).toEqual([[], false]);
      expect(same.modules.map((m) => m.hash)).toEqual(first.modules.map((m) => m.hash));

      // A save of b.ts that keeps its imports: b.ts alone, no graph build.
      file("b.ts", 'import { sep } from "node:path";\nexport const b: number = sep.length * 2;\n');
      const saved = ok(await builder.build());
      expect([names(saved.compiled, dir), saved.graph]).toEqual([["b.ts"], false]);
      const hash = (r: typeof first, name: string) => r.modules.find((m) => m.file === file(name))!.hash;
      expect(hash(saved, "b.ts")).not.toBe(hash(first, "b.ts"));
      expect(hash(saved, "a.ts")).toBe(hash(first, "a.ts"));

      // An import added: the graph is built again and the new file joins.
      file("c.ts", "export const c = 3;\n");
      file("a.ts", 'import { b } from "./b.js";\nimport { c } from "./c.js";\nexport const a = () => b + c;\n');
      const added = ok(await builder.build());
      expect([names(added.compiled, dir), added.graph]).toEqual([["a.ts", "c.ts"], true]);
      expect(names(added.inputs, dir)).toEqual(["a.ts", "b.ts", "c.ts", "main.ts"]);
      expect(added.modules.find((m) => m.file === file("a.ts"))!.imports).toEqual({
        "./b.js": pathToFileURL(file("b.ts")).href,
        "./c.js": pathToFileURL(file("c.ts")).href,
      });

      // The import removed: c.ts is no longer read, nor watched.
      file("a.ts", 'import { b } from "./b.js";\nexport const a = () => b + 1;\n');
      const removed = ok(await builder.build());
      expect([names(removed.compiled, dir), removed.graph]).toEqual([["a.ts"], true]);
      expect(names(removed.inputs, dir)).toEqual(["a.ts", "b.ts", "main.ts"]);

      // A file the app imports is deleted: the build says which import no longer resolves.
      rmSync(file("b.ts"));
      const gone = await builder.build();
      expect(gone.ok).toBe(false);
      expect(!gone.ok && gone.message).toMatch(/Could not resolve "\.\/b\.js"/);
      expect(!gone.ok && gone.message).toMatch(/src\/(a|main)\.ts:\d+:\d+:/);
    } finally {
      await builder.dispose();
    }
  });

  test("a syntax error in a saved file is esbuild's message with file, line and code frame; the next good save builds only that file", async () => {
    const { dir, file } = smallApp();
    const builder = new Builder(file("main.ts"), join(dir, "out"));
    try {
      ok(await builder.build());
      file("a.ts", 'import { b } from "./b.js";\nexport const a = () => (b + 1;\n');
      const failed = await builder.build();
      expect(failed.ok).toBe(false);
      const message = failed.ok ? "" : failed.message;
      expect(message).toContain('[ERROR] Expected ")" but found ";"');
      expect(message).toMatch(/src\/a\.ts:2:\d+:/);
      expect(message).toMatch(/2 │ export const a = \(\) => \(b \+ 1;/);
      file("a.ts", 'import { b } from "./b.js";\nexport const a = () => (b + 1);\n');
      const fixed = ok(await builder.build());
      expect([names(fixed.compiled, dir), fixed.graph]).toEqual([["a.ts"], false]);
    } finally {
      await builder.dispose();
    }
  });

  test("imports name app files by URL, packages by their file's URL, builtins and shared modules as written", async () => {
    const { dir, file } = smallApp();
    mkdirSync(join(dir, "node_modules/dep"), { recursive: true });
    writeFileSync(join(dir, "node_modules/dep/package.json"), JSON.stringify({ name: "dep", type: "module", exports: { import: "./esm.js", require: "./cjs.cjs" } }));
    writeFileSync(join(dir, "node_modules/dep/esm.js"), "export const kind = 'esm';\n");
    file("b.ts", 'import { sep } from "node:path";\nimport { kind } from "dep";\nimport { z } from "zod";\nexport const b: number = sep.length + kind.length + (z ? 1 : 0);\n');
    const builder = new Builder(file("main.ts"), join(dir, "out"));
    try {
      const result = ok(await builder.build());
      const b = result.modules.find((m) => m.file === file("b.ts"))!;
      expect(b.imports).toEqual({ "node:path": "node:path", dep: pathToFileURL(join(dir, "node_modules/dep/esm.js")).href, zod: "zod" });
      expect(result.modules.find((m) => m.file === file("main.ts"))!.imports).toEqual({
        mend: "mend",
        "./a.js": pathToFileURL(file("a.ts")).href,
        "./b.js": pathToFileURL(file("b.ts")).href,
      });
      // The code keeps each import as written, and its own import.meta.
      expect(b.code).toContain('from "dep"');
      expect(result.entry).toBe(pathToFileURL(file("main.ts")).href);
    } finally {
      await builder.dispose();
    }
  });

  test("a version is a manifest; a module's files are written once and removed with the last version that uses them", async () => {
    const { dir, file } = smallApp();
    const out = join(dir, "out");
    const builder = new Builder(file("main.ts"), out);
    try {
      const v1 = builder.write("v1", ok(await builder.build()));
      const manifest = parseManifest(readFileSync(v1, "utf8"));
      expect(manifest.entry).toBe(pathToFileURL(file("main.ts")).href);
      expect(manifest.modules).toHaveLength(3);
      for (const m of manifest.modules) {
        expect(existsSync(join(out, m.code))).toBe(true);
        expect(JSON.parse(readFileSync(join(out, `${m.code}.map`), "utf8")).sources).toEqual([m.url]);
      }
      file("b.ts", 'import { sep } from "node:path";\nexport const b: number = sep.length * 3;\n');
      const v2 = builder.write("v2", ok(await builder.build()));
      const codes = (path: string) => parseManifest(readFileSync(path, "utf8")).modules.map((m) => m.code);
      const oldB = codes(v1).filter((c) => !codes(v2).includes(c));
      expect(oldB).toHaveLength(1);
      expect(readdirSync(join(out, "m"))).toHaveLength(8);

      builder.remove(v1);
      expect(existsSync(v1)).toBe(false);
      expect(existsSync(join(out, oldB[0]!))).toBe(false);
      expect(readdirSync(join(out, "m")).sort()).toEqual(codes(v2).flatMap((c) => [c.slice(2), `${c.slice(2)}.map`]).sort());
    } finally {
      await builder.dispose();
    }
  });
});

describe("decisions of the file-by-file build", () => {
  const manifest = (edges: Record<string, string[]>): VersionManifest => ({
    entry: "file:///main.ts",
    modules: Object.entries(edges).map(([url, deps]) => ({ url, code: "", hash: url, imports: Object.fromEntries(deps.map((d) => [d, d])) })),
  });

  test("the modules to make anew: the changed ones and every module that imports one, directly or not", () => {
    const m = manifest({
      "file:///main.ts": ["file:///a.ts", "file:///c.ts", "mend"],
      "file:///a.ts": ["file:///b.ts"],
      "file:///b.ts": [],
      "file:///c.ts": ["file:///d.ts"],
      "file:///d.ts": ["file:///c.ts"],
    });
    const changed = (...urls: string[]) => [...modulesToMake(m, (r) => !urls.includes(r.url))].sort();
    expect(changed()).toEqual([]);
    expect(changed("file:///b.ts")).toEqual(["file:///a.ts", "file:///b.ts", "file:///main.ts"]);
    // An import cycle is made anew as a whole.
    expect(changed("file:///d.ts")).toEqual(["file:///c.ts", "file:///d.ts", "file:///main.ts"]);
    expect(changed("file:///main.ts")).toEqual(["file:///main.ts"]);
  });

  test("what a specifier names: the manifest's answer, else resolved from the source file", () => {
    const record = { url: "file:///app/src/a.ts", code: "", hash: "h", imports: { "./b.js": "file:///app/src/b.ts" } };
    expect(targetOf(record, "./b.js")).toBe("file:///app/src/b.ts");
    expect(targetOf(record, "../x.js")).toBe("file:///app/x.js");
    expect(targetOf(record, "node:fs")).toBe("node:fs");
    expect(targetOf(undefined, "./b.js")).toBe("./b.js");
  });

  test("a manifest that is not one is refused", () => {
    expect(() => parseManifest("{}")).toThrow("not a version manifest");
    expect(() => parseManifest(JSON.stringify({ entry: "file:///m.ts", modules: [{ url: "file:///m.ts", code: "m/x.mjs", hash: "x" }] }))).toThrow("not a version manifest");
    expect(() => parseManifest(JSON.stringify({ entry: "file:///m.ts", modules: [] }))).toThrow("no module for its entry");
  });

  test("imports from the graph's metafile: app files by URL, packages as recorded, the rest as written; require() left out", () => {
    const metafile = {
      inputs: {
        "src/main.ts": {
          bytes: 1,
          imports: [
            { path: "src/a.ts", kind: "import-statement", original: "./a.js" },
            { path: "dep", kind: "import-statement", external: true },
            { path: "mend", kind: "import-statement", external: true },
            { path: "src/c.cjs", kind: "require-call", original: "./c.cjs" },
          ],
        },
        "src/a.ts": { bytes: 1, imports: [{ path: "node:fs", kind: "dynamic-import", external: true }] },
        "node_modules/x/index.js": { bytes: 1, imports: [] },
      },
      outputs: {},
    };
    const packages = new Map([[packageKey("/app/src/main.ts", "dep"), "file:///app/node_modules/dep/index.js"]]);
    expect(resolutionOf(metafile as never, "/app", packages)).toEqual(
      new Map([
        ["/app/src/main.ts", { "./a.js": "file:///app/src/a.ts", dep: "file:///app/node_modules/dep/index.js", mend: "mend" }],
        ["/app/src/a.ts", { "node:fs": "node:fs" }],
      ]),
    );
    expect(specifiersOf(metafile.inputs["src/main.ts"].imports as never)).toEqual(["./a.js", "dep", "mend"]);
  });

  test("the graph is built again when a file's imports change or do not resolve", () => {
    const resolution = new Map([["/a.ts", { "./b.js": "file:///b.ts" }]]);
    const atGraph = new Map([["/a.ts", "./b.js"]]);
    expect(needsGraph(new Map([["/a.ts", ["./b.js"]]]), atGraph, resolution)).toBe(false);
    expect(needsGraph(new Map([["/a.ts", ["./b.js", "./c.js"]]]), atGraph, resolution)).toBe(true);
    expect(needsGraph(new Map([["/a.ts", []]]), atGraph, resolution)).toBe(true);
    // Imports as at the last graph build that it did not resolve (a save raced the graph build).
    expect(needsGraph(new Map([["/a.ts", ["./b.js"]]]), atGraph, new Map([["/a.ts", {}]]))).toBe(true);
    expect(statKey(undefined)).toBe("missing");
    expect(statKey({ mtimeMs: 1.5, size: 10, ino: 7 })).toBe("1.5:10:7");
  });
});
