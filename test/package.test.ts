// mend as a user gets it: `npm pack`, installed with npm into a project outside the
// repository, type-checked with the strictest flags, run through its own bin, and
// `mend init` followed by `npm install` and `npm test`.
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { TSX } from "../src/cli/init.js";
import { npmInstall, packMend, root, run, Running } from "./helpers/project.js";
import { tempDir } from "./helpers/temp.js";

const own = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

const STRICT = {
  target: "ES2022",
  module: "nodenext",
  moduleResolution: "nodenext",
  strict: true,
  exactOptionalPropertyTypes: true,
  noImplicitOverride: true,
  noUncheckedIndexedAccess: true,
  verbatimModuleSyntax: true,
  skipLibCheck: false,
  noEmit: true,
};

// The README's client example, as a file of the project.
const CLIENT = `import { ExternalContext } from "mend";
import { Account } from "./api.js";

const ctx = new ExternalContext({ url: "http://127.0.0.1:9991" });
await Account.ref("alice").deposit(ctx, { amount: 10 });
const { task } = await Account.ref("alice").spawn({ when: { secs: 5 } }).welcomeEmail(ctx);
await task;
`;

describe("the packed package", () => {
  test("holds the built JavaScript, its declarations and the README, and builds nothing at install", async () => {
    const tgz = await packMend();
    const files = (await run("tar", ["-tzf", tgz], root)).stdout.split("\n").filter(Boolean);
    for (const f of files) expect(f).toMatch(/^package\/(dist\/.+|package\.json|README\.md|LICENSE)$/);
    for (const f of ["dist/cli.js", "dist/index.js", "dist/dev-runtime.js", "dist/types/index.d.ts", "dist/types/index.d.ts.map"])
      expect(files).toContain(`package/${f}`);
    const pkg = JSON.parse((await run("tar", ["-xzOf", tgz, "package/package.json"], root)).stdout) as {
      scripts: Record<string, string>;
      exports: { ".": { types: string } };
    };
    expect(pkg.scripts).not.toHaveProperty("prepare");
    expect(pkg.scripts).not.toHaveProperty("install");
    expect(pkg.scripts).not.toHaveProperty("postinstall");
    expect(pkg.exports["."].types).toBe("./dist/types/index.d.ts");
  });

  test("a project with only mend, zod and typescript type-checks strictly, runs under mend dev run, and a save fixes its failing task", async () => {
    const dir = join(tempDir(), "bank");
    cpSync(join(root, "fixtures/bank/src"), join(dir, "src"), { recursive: true });
    writeFileSync(join(dir, "src/client.ts"), CLIENT);
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: STRICT, include: ["src"] }, null, 2));
    writeFileSync(
      join(dir, "package.json"),
      JSON.stringify({ name: "bank", private: true, type: "module", allowScripts: { "better-sqlite3": true, esbuild: true } }, null, 2),
    );
    await npmInstall(dir, [await packMend(), `zod@${own.dependencies.zod}`, `typescript@${own.devDependencies.typescript}`]);
    expect(existsSync(join(dir, "node_modules/@types/node"))).toBe(false);
    expect(existsSync(join(dir, "node_modules/@types/better-sqlite3"))).toBe(false);

    // The declarations pass the strict flags, checked themselves and skipped.
    await run(join(dir, "node_modules/.bin/tsc"), ["-p", "."], dir);
    await run(join(dir, "node_modules/.bin/tsc"), ["-p", ".", "--skipLibCheck"], dir);
    // npm 11 has nothing left to ask about install scripts.
    expect((await run("npm", ["approve-scripts", "--allow-scripts-pending"], dir)).all).toContain("No packages with unreviewed install scripts");
    // For client scripts (Node 20 runs no .ts file).
    await npmInstall(dir, [`tsx@${TSX}`]);

    const dev = new Running(join(dir, "node_modules/.bin/mend"), ["dev", "run", "--port", "0", "--name", "bank"], dir);
    const [, url] = await dev.until(/serving bank at (http:\/\/\S+)/);
    await dev.until(/v1 ready in \d+ ms/);
    // The README's client example runs on Node 20 with tsx, against this server.
    writeFileSync(join(dir, "src/client.ts"), CLIENT.replace("http://127.0.0.1:9991", url!));
    await run(join(dir, "node_modules/.bin/tsx"), ["src/client.ts"], dir);
    await dev.until(/✓ Account\('alice'\)\.welcomeEmail \[[\w-]+\] completed on v1/);
    const spawned = await fetch(`${url}/v1/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ stateType: "Account", stateId: "carol", method: "statement", request: {} }),
    });
    expect(spawned.status).toBe(201);
    await dev.until(/✗ Account\('carol'\)\.statement \[[\w-]+\] failed on v1 \(attempt 1\): Error: Unknown currency 'usd'/);
    await dev.until(/at formatBalance \(src\/format\.ts:5:\d+\)/);
    const format = join(dir, "src/format.ts");
    writeFileSync(format, readFileSync(format, "utf8").replace("SYMBOLS[currency]", "SYMBOLS[currency.toUpperCase()]"));
    await dev.until(/v2 ready in \d+ ms \(src\/format\.ts\) — retrying 1 failing task/);
    await dev.until(/✓ Account\('carol'\)\.statement \[[\w-]+\] completed on v2 \(attempt 2\)/);
    expect(await dev.stop()).toEqual({ exitCode: 130, signal: undefined });
  }, 240_000);

  test("mend init makes a project whose npm test passes and whose npm run dev serves it", async () => {
    const dir = join(tempDir(), "counter");
    mkdirSync(dir);
    const tgz = await packMend();
    const cli = (await run("node", [join(root, "dist/cli.js"), "init", dir], root)).stdout;
    expect(cli).toContain("Created counter in");
    expect(readFileSync(join(dir, ".gitignore"), "utf8")).toMatch(/^\.mend\/$/m);
    // Installed from the tarball in place of the registry's mend.
    await npmInstall(dir, [tgz]);
    expect((await run("npm", ["approve-scripts", "--allow-scripts-pending"], dir)).all).toContain("No packages with unreviewed install scripts");
    const tested = await run("npm", ["test"], dir);
    expect(tested.all).toMatch(/Tests\s+2 passed/);

    const dev = new Running("npm", ["run", "dev", "--", "--port", "0"], dir);
    const [, url] = await dev.until(/serving counter at (http:\/\/\S+)/);
    await dev.until(/v1 ready in \d+ ms/);
    // The client script runs on Node 20 (through tsx) against it.
    const client = await run("npm", ["run", "client"], dir, { env: { MEND_URL: url! } });
    expect(client.stdout).toContain("{ count: 5 }");
    expect(await dev.stop()).toMatchObject({ signal: "SIGINT" });
  }, 240_000);
});
