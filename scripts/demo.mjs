// npm run demo: `mend dev run` on a fresh working copy of fixtures/bank, with a task that
// fails because of a bug in .demo/bank/src/format.ts. Fix the line, save, and watch it succeed.
import { spawn } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const app = join(root, ".demo/bank");
rmSync(app, { recursive: true, force: true });
cpSync(join(root, "fixtures/bank"), app, { recursive: true });

const child = spawn(process.execPath, [join(root, "dist/cli.js"), "dev", "run", "--name", "demo", ...process.argv.slice(2)], {
  cwd: app,
  stdio: ["inherit", "pipe", "inherit"],
});
let spawned = false;
child.stdout.on("data", async (chunk) => {
  process.stdout.write(chunk);
  const url = /serving demo at (http:\/\/\S+)/.exec(chunk.toString())?.[1];
  if (!url || spawned) return;
  spawned = true;
  const response = await fetch(`${url}/v1/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ stateType: "Account", stateId: "carol", method: "statement", request: {} }),
  });
  const { id } = await response.json();
  console.log(`\ndemo: started task ${id}: Account('carol').statement, which fails and retries only once a minute.`);
  console.log("demo: fix it: in .demo/bank/src/format.ts, line 4, look the currency up in upper case:");
  console.log("demo:     const symbol = SYMBOLS[currency.toUpperCase()];");
  console.log("demo: then save, and watch the task succeed at once. Ctrl+C to stop.\n");
});
// Ctrl+C reaches both processes; the watcher stops itself and this script follows.
process.on("SIGINT", () => {});
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 130 : 1)));
