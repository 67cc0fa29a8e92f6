// Building an app (src/server/build.ts, app-plugin.ts) and the dev Builder around esbuild.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, test } from "vitest";
import { Builder, isServiceGone } from "../dev/builder.js";
import { importMetaPrefix, isPackageFile, withImportMeta } from "../src/server/app-plugin.js";
import { buildApp } from "../src/server/build.js";
import { resolveFrom } from "../src/server/shared.js";
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
