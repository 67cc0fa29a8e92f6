// A runtime in a child process, for tests whose subject is a crash: node run-app.mjs STORE BUNDLE ACTIONS_JSON,
// where STORE is a folder (SQLite) or a PostgreSQL URL (more options in MEND_RUNTIME_OPTIONS, JSON).
// Prints one JSON line per engine event, and {"event":"ready"} once the actions are done.
import { pathToFileURL } from "node:url";
import { Runtime } from "../../dist/index.js";

const [directory, bundle, actions] = process.argv.slice(2);
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
try {
  const app = (await import(pathToFileURL(bundle).href)).default;
  const options = /^postgres(ql)?:/.test(directory) ? { store: directory } : { directory };
  const rt = await Runtime.start(app, { ...options, ...JSON.parse(process.env.MEND_RUNTIME_OPTIONS ?? "{}") });
  for (const event of ["attempt:start", "attempt:end", "attempt:lost", "task:finished", "task:waiting"])
    rt.on(event, (e) => print({ event, ...e, error: e.error?.message }));
  for (const action of JSON.parse(actions)) {
    const taskId = await rt.spawn(action.target, action.request);
    print({ event: "spawned", taskId });
  }
  print({ event: "ready", pid: process.pid });
} catch (e) {
  print({ event: "error", message: e.message });
  process.exitCode = 1;
}
