// Loading versions as the runtime of `mend dev run` does (src/server/load-version.ts): a
// graph of vm modules, one per source file, in a process started with RELOADING_FLAGS.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { tempDir } from "./helpers/temp.js";
import { Versions } from "./helpers/versions.js";

const CHAIN = 40;
const RUN = `const runs = (globalThis as any).__runs as string[];\n`;

/**
 * main imports a (which imports b) and the end of a chain of CHAIN modules (each imports
 * the one before; c0 hands an object to __track), and imports lazy.ts with import().
 */
function writeApp(dir: string): { main: string; a: string; b: string } {
  mkdirSync(join(dir, "src"), { recursive: true });
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, "src", name), text);
    return join(dir, "src", name);
  };
  const main = file(
    "main.ts",
    `import { Application } from "mend";\nimport { a } from "./a.js";\nimport { c${CHAIN - 1} } from "./c${CHAIN - 1}.js";\n${RUN}runs.push("main");\n` +
      `const lazy = await import("./lazy.js");\nruns.push(\`main saw \${a} \${c${CHAIN - 1}()} \${lazy.n}\`);\n` +
      // The application holds the chain, as servicers hold the modules they call.
      `export default Object.assign(new Application({ servicers: [] }), { chain: c${CHAIN - 1} });\n`,
  );
  const a = file("a.ts", `import { b } from "./b.js";\n${RUN}runs.push("a");\nexport const a = \`a\${b}\`;\n`);
  const b = file("b.ts", `${RUN}runs.push("b");\nexport const b = 1;\n`);
  file("lazy.ts", `${RUN}runs.push(\`lazy \${import.meta.url.split("/").pop()}\`);\nexport const n = 7;\n`);
  file("c0.ts", `${RUN}runs.push("c0");\nconst marker = {};\n(globalThis as any).__track(marker, \`c0 of \${(globalThis as any).__version}\`);\nexport const c0 = () => (marker ? 0 : -1);\n`);
  for (let i = 1; i < CHAIN; i++) file(`c${i}.ts`, `import { c${i - 1} } from "./c${i - 1}.js";\n${RUN}runs.push("c${i}");\nexport const c${i} = () => c${i - 1}() + 1;\n`);
  return { main, a, b };
}

/** What every version's top-level code records, in the order ES modules run. */
const EVERY_RUN = ["b", "a", ...Array.from({ length: CHAIN }, (_, i) => `c${i}`), "main", "lazy lazy.ts", `main saw a1 ${CHAIN - 1} 7`];
const STATIC_MODULES = 3 + CHAIN;

async function start() {
  const dir = tempDir();
  const files = writeApp(dir);
  return { dir, files, versions: await Versions.start(files.main, join(dir, "out")) };
}

describe("loading a version", () => {
  test("every module runs its top-level code again on each version; a save compiles only the changed file and the files that import it", async () => {
    const { files, versions } = await start();
    const v1 = await versions.load();
    expect(v1).toMatchObject({ ok: true, version: "v1", compiled: STATIC_MODULES + 1 });
    expect(v1.runs).toEqual(EVERY_RUN);

    // Spares of every module the entry imports are made ahead for the next version.
    expect(await versions.spares()).toEqual({ compiled: STATIC_MODULES });
    writeFileSync(files.b, `${RUN}runs.push("b");\nexport const b = 2;\n`);
    const v2 = await versions.load();
    // b, a (imports b), main (imports a), and lazy (only ever imported with import()).
    expect(v2).toMatchObject({ ok: true, version: "v2", compiled: 4 });
    expect(v2.runs).toEqual(EVERY_RUN.map((r) => r.replace("a1", "a2")));

    // A save right after the last finds the spares unmade, or some of them: it compiles the rest.
    writeFileSync(files.b, `${RUN}runs.push("b");\nexport const b = 3;\n`);
    const v3 = await versions.load();
    expect(v3.ok).toBe(true);
    expect(v3.compiled).toBeGreaterThanOrEqual(4);
    expect(v3.runs).toEqual(EVERY_RUN.map((r) => r.replace("a1", "a3")));
  });

  test("a version that is dropped is freed within a few garbage collections, however deep its chain of imports", async () => {
    const { files, versions } = await start();
    expect((await versions.load()).ok).toBe(true);
    await versions.spares();
    writeFileSync(files.b, `${RUN}runs.push("b");\nexport const b = 2;\n`);
    expect((await versions.load()).ok).toBe(true);
    // c0 of v2 is v1's spare: only v1's own c0 can be gone.
    expect((await versions.drop()).freed).toEqual(["c0 of v1"]);
  });

  test("a version whose imports do not link, or whose module throws, is rejected; the next good one loads", async () => {
    const { files, versions } = await start();
    expect((await versions.load()).ok).toBe(true);
    await versions.spares();
    writeFileSync(files.a, `import { b, missing } from "./b.js";\n${RUN}runs.push("a");\nexport const a = \`a\${b}\${missing}\`;\n`);
    const unlinked = await versions.load();
    expect(unlinked.ok).toBe(false);
    expect(unlinked.error).toBe(`The application threw while loading: SyntaxError: The requested module './b.js' does not provide an export named 'missing' (imported by ${files.a})`);
    expect(unlinked.runs).toEqual([]);

    writeFileSync(files.a, `import { b } from "./b.js";\n${RUN}runs.push("a");\nif (b) throw new Error("a is broken");\nexport const a = "a";\n`);
    const thrown = await versions.load();
    expect(thrown.ok).toBe(false);
    expect(thrown.error).toMatch(/^The application threw while loading: Error: a is broken\n {4}at .*src\/a\.ts:4:14\)/);
    expect(thrown.runs).toEqual(["b", "a"]);

    writeFileSync(files.a, `import { b } from "./b.js";\n${RUN}runs.push("a");\nexport const a = \`a\${b}\`;\n`);
    const fixed = await versions.load();
    expect(fixed).toMatchObject({ ok: true, version: "v4" });
    expect(fixed.runs).toEqual(EVERY_RUN);
  });
});
