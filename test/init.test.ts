// `mend init [DIR]`; test/package.test.ts installs what it makes and runs its npm test.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { initFiles, projectName } from "../src/cli/init-templates.js";
import { templateVersions } from "../src/cli/init.js";
import { mend } from "./helpers/cli.js";
import { tempDir } from "./helpers/temp.js";

const own = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as Parameters<typeof templateVersions>[0] & {
  dependencies: Record<string, string>;
};

describe("mend init", () => {
  test("writes a project named after its folder, with dev, start and test scripts", async () => {
    const dir = join(tempDir(), "My Shop");
    const result = await mend(["init", dir]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain("Created my-shop in");
    for (const file of initFiles("x", templateVersions(own)).keys()) expect(existsSync(join(dir, file))).toBe(true);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      name: string;
      type: string;
      scripts: Record<string, string>;
      dependencies: Record<string, string>;
      allowScripts: Record<string, boolean>;
    };
    expect(pkg.name).toBe("my-shop");
    expect(pkg.type).toBe("module");
    expect(pkg.scripts).toMatchObject({
      dev: "mend dev run --application src/main.ts --name my-shop",
      start: "mend serve --application src/main.ts --name my-shop",
      test: "tsc && vitest run",
    });
    expect(pkg.dependencies).toEqual({ mend: `^${own.version}`, zod: own.dependencies.zod });
    expect(pkg.allowScripts).toEqual({ "better-sqlite3": true, esbuild: true });
    expect(readFileSync(join(dir, ".gitignore"), "utf8")).toMatch(/^\.mend\/$/m);
  });

  test("writes into the current folder when given none", async () => {
    const dir = join(tempDir(), "here");
    mkdirSync(dir);
    writeFileSync(join(dir, "notes.txt"), "mine");
    const result = await mend(["init"], { cwd: dir });
    expect(result.exitCode).toBe(0);
    expect(existsSync(join(dir, "src/main.ts"))).toBe(true);
    expect(readFileSync(join(dir, "notes.txt"), "utf8")).toBe("mine");
  });

  test("refuses to overwrite any file, and then writes none", async () => {
    const dir = join(tempDir(), "taken");
    mkdirSync(join(dir, "src"), { recursive: true });
    writeFileSync(join(dir, "src/main.ts"), "// mine\n");
    const result = await mend(["init", dir]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr.trim().split("\n")).toEqual([`mend: Not overwriting src/main.ts in ${dir}; run mend init in a new or empty folder.`]);
    expect(readFileSync(join(dir, "src/main.ts"), "utf8")).toBe("// mine\n");
    expect(existsSync(join(dir, "package.json"))).toBe(false);
  });

  test("project names npm and --name accept", () => {
    expect(projectName("My Shop")).toBe("my-shop");
    expect(projectName("_private.app")).toBe("private.app");
    expect(projectName("app!")).toBe("app");
    expect(projectName("---")).toBe("mend-app");
  });
});
