// The holder file beside a store names the process that holds it (issue 13, item 1): it
// must never hold a secret given as a flag, and only its owner may read it.
import { readFileSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { describeCommand } from "../src/store/open.js";
import { copyFixture, mend, serve } from "./helpers/cli.js";

const secret = "S3cr3t-holder-value";

describe("describeCommand", () => {
  test("keeps the script, subcommands and flag names, never a value", () => {
    expect(describeCommand(["/x/dist/cli.js", "serve", "--application", "src/main.ts", "--name", "bank", "--admin-secret", secret])).toBe(
      "cli.js serve --application --name --admin-secret",
    );
    expect(describeCommand(["/x/cli.js", "serve", `--admin-secret=${secret}`, "-p", "1"])).toBe("cli.js serve --admin-secret -p");
    // A value that looks like a flag, and a first argument that is a whole configuration.
    expect(describeCommand(["/x/cli.js", "serve", "--admin-secret", `-${secret}`])).toBe("cli.js serve --admin-secret …");
    expect(describeCommand(["/x/dev-runtime.js", JSON.stringify({ adminSecret: secret })])).toBe("dev-runtime.js …");
    expect(describeCommand([])).toBe("node");
  });
});

describe("mend serve --admin-secret", () => {
  test("the holder file names the process without the secret and is readable by its owner only", async () => {
    const dir = copyFixture("bank");
    const holder = join(dir, ".mend", "test", "mend.sqlite.holder");
    const { child } = await serve(dir, ["--admin-secret", secret]);
    const text = readFileSync(holder, "utf8");
    expect(text).not.toContain(secret);
    expect(JSON.parse(text)).toMatchObject({ pid: child.pid, command: "cli.js serve --application --name --port --admin-secret" });
    expect(statSync(holder).mode & 0o777).toBe(0o600);

    // A second server on the same state names the holder, and not the secret.
    const second = await mend(["serve", "--application", "src/main.ts", "--name", "test", "--port", "0", "--admin-secret", secret], { cwd: dir });
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`is in use by process ${child.pid} \\(cli\\.js serve --application --name --port --admin-secret\\)`));
    expect(second.stderr).not.toContain(secret);

    // A holder file written by an older mend (the whole command line): masked when shown.
    writeFileSync(holder, JSON.stringify({ pid: child.pid, command: `/x/cli.js serve --name test --admin-secret ${secret}`, since: "then" }));
    const third = await mend(["serve", "--application", "src/main.ts", "--name", "test", "--port", "0"], { cwd: dir });
    expect(third.stderr).toContain(`is in use by process ${child.pid} (cli.js serve --name --admin-secret), since then`);
    expect(third.stderr).not.toContain(secret);
  });

  test("a holder file left behind by a killed server, readable by all, is replaced by one for the owner only", async () => {
    const dir = copyFixture("bank");
    const holder = join(dir, ".mend", "test", "mend.sqlite.holder");
    const first = await serve(dir, ["--admin-secret", secret]);
    first.child.kill("SIGKILL");
    await first.child;
    writeFileSync(holder, JSON.stringify({ pid: first.child.pid, command: `serve --admin-secret ${secret}`, since: "then" }));
    chmodSync(holder, 0o644);

    const { child } = await serve(dir, [], false, { MEND_ADMIN_SECRET: secret });
    expect(statSync(holder).mode & 0o777).toBe(0o600);
    const text = readFileSync(holder, "utf8");
    expect(JSON.parse(text).pid).toBe(child.pid);
    expect(text).not.toContain(secret);
  });
});
