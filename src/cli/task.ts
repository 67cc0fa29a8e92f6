import { Option, type Command } from "commander";
import { MendError } from "../api/errors.js";
import { errorFrom, HttpClient } from "../client/external.js";
import type { AttemptInfo } from "../runtime/runtime.js";
import { APPLICATION_URL_VARIABLE, DEFAULT_APPLICATION_URL } from "./application-url.js";
import { parseCount, parseSeconds } from "./options.js";
import { parseTaskRef, TASK_ID_FORMS, type TaskRef } from "./task-ref.js";
import { renderTask, renderTaskList, stateOf, type CutValues, type SummaryJson, type TaskJson } from "./task-view.js";
import { renderHistory, renderSteps, rerunDone, type HistoryJson, type StepJson } from "./task-steps.js";

const STATUSES = ["SCHEDULED", "STARTED", "SCHEDULED_RETRY", "SCHEDULED_ITERATION", "COMPLETED", "ABORTED", "CANCELLED"];
/** How often `list --watch` asks for the list again. */
const WATCH_INTERVAL_MS = 1000;

interface Connection {
  applicationUrl: string;
  adminCredential?: string;
  timeout: number;
}

function client(o: Connection): HttpClient {
  return new HttpClient({ url: o.applicationUrl, adminCredential: o.adminCredential, timeoutMs: o.timeout * 1000 });
}

function connection(cmd: Command): Command {
  return cmd
    .addOption(new Option("--application-url <url>", "the application's URL").env(APPLICATION_URL_VARIABLE).default(DEFAULT_APPLICATION_URL))
    .addOption(new Option("--admin-credential <secret>", "the admin secret of a server that requires one").env("MEND_ADMIN_CREDENTIAL"))
    .option("--timeout <seconds>", "give up on an answer after this long", parseSeconds, 30);
}

/** The task a person named, found on the server (which resolves a start of a uuid), checked against the state they gave. */
async function findTask(http: HttpClient, ref: TaskRef, full = false): Promise<{ task: TaskJson; attempts: AttemptInfo[]; history?: HistoryJson[]; cut?: CutValues }> {
  const shown = await http.ok<{ task: TaskJson; attempts: AttemptInfo[]; history?: HistoryJson[]; cut?: CutValues }>("GET", `/v1/tasks/${ref.uuid}${full ? "?full=true" : ""}`);
  const found = shown.task.taskId;
  if ((ref.stateType !== undefined && found.stateType !== ref.stateType) || (ref.stateId !== undefined && found.stateId !== ref.stateId)) {
    const given = stateOf({ stateType: ref.stateType ?? found.stateType, stateId: ref.stateId ?? found.stateId });
    throw new MendError("TASK_NOT_FOUND", `Task ${found.taskUuid} belongs to ${stateOf(found)}, not ${given}.`);
  }
  return shown;
}

/** POSTs an action on a task; a 409 (nothing to do) is its message on stdout and exit code 1. */
async function act(http: HttpClient, path: string, done: string): Promise<void> {
  const { status, body } = await http.request("POST", path);
  if (status === 409) {
    console.log(body.error?.message ?? "Nothing to do.");
    process.exitCode = 1;
    return;
  }
  if (status >= 400) throw errorFrom(status, body);
  console.log(done);
}

interface ListOptions extends Connection {
  status?: string;
  stateType?: string;
  stateId?: string;
  method?: string;
  json?: boolean;
  limit?: number;
  watch?: boolean;
}

/** Pages through the list, newest first, up to `limit` tasks; stops with an error if a page does not move on. */
async function fetchTasks(http: HttpClient, o: ListOptions, limit: number): Promise<SummaryJson[]> {
  const tasks: SummaryJson[] = [];
  let before: number | null = null;
  while (tasks.length < limit) {
    const query = new URLSearchParams({ limit: String(Math.min(1000, limit - tasks.length)) });
    if (o.status) query.set("status", o.status.toUpperCase());
    if (o.stateType) query.set("stateType", o.stateType);
    if (o.stateId) query.set("stateId", o.stateId);
    if (o.method) query.set("method", o.method);
    if (before !== null) query.set("before", String(before));
    const page = await http.ok<{ tasks: SummaryJson[]; next: number | null }>("GET", `/v1/tasks?${query}`);
    tasks.push(...page.tasks);
    if (page.next === null || page.next === undefined) break;
    // Cursors go down, newest first: one that does not would page forever.
    if (typeof page.next !== "number" || page.tasks.length === 0 || (before !== null && page.next >= before))
      throw new MendError("BAD_RESPONSE", `${http.url} answered a page of tasks whose 'next' (${String(page.next)}) does not move on; stopped listing.`);
    before = page.next;
  }
  return tasks.slice(0, limit);
}

function width(): number {
  return process.stdout.columns || Number(process.env.COLUMNS) || 80;
}

/** `list --watch`: the table again every interval, written only when it changed. */
async function watch(http: HttpClient, o: ListOptions): Promise<never> {
  const limit = o.limit ?? Math.max(5, (process.stdout.rows || 24) - 3);
  const tty = process.stdout.isTTY;
  let last = "";
  for (;;) {
    let frame: string;
    try {
      frame = renderTaskList(await fetchTasks(http, o, limit), Date.now(), width());
    } catch (e) {
      if (typeof (e as { code?: unknown }).code !== "string") throw e;
      frame = `mend: ${(e as Error).message}`;
    }
    if (frame !== last) {
      // A terminal is redrawn in place; a pipe gets each new table after a blank line.
      process.stdout.write(tty ? `\x1b[H\x1b[2J${frame}\n` : `${last ? "\n" : ""}${frame}\n`);
      last = frame;
    }
    await new Promise((resolve) => setTimeout(resolve, WATCH_INTERVAL_MS));
  }
}

export function registerTaskCommands(program: Command): void {
  const task = program.command("task").description("inspect and act on the tasks of a running application");

  connection(task.command("list"))
    .description("list tasks, newest first (every task, unless --limit)")
    .option("--status <status>", `only tasks with this status (${STATUSES.join(", ")})`)
    .option("--state-type <type>", "only tasks of this state type")
    .option("--state-id <id>", "only tasks of this state instance")
    .option("--method <method>", "only tasks of this method")
    .option("--limit <n>", "at most this many tasks, the newest", parseCount)
    .option("--watch", "keep the list on screen, redrawn as tasks change (Ctrl+C stops)")
    .option("--json", "print JSON")
    .action(async (o: ListOptions) => {
      if (o.status && !STATUSES.includes(o.status.toUpperCase()))
        throw new MendError("INVALID_ARGUMENT", `--status must be one of ${STATUSES.join(", ")}; got '${o.status}'.`);
      if (o.watch && o.json) throw new MendError("INVALID_ARGUMENT", "--watch draws a table; it does not go with --json.");
      const http = client(o);
      if (o.watch) return watch(http, o);
      const tasks = await fetchTasks(http, o, o.limit ?? Infinity);
      if (o.json) return void console.log(JSON.stringify(tasks, null, 2));
      console.log(renderTaskList(tasks, Date.now(), width()));
    });

  connection(task.command("show"))
    .description("show a task and every attempt it made")
    .argument("<task-id>", TASK_ID_FORMS)
    .option("--full", "print large values whole instead of cutting them")
    .option("--json", "print JSON")
    .action(async (id: string, o: Connection & { json?: boolean; full?: boolean }) => {
      const http = client(o);
      const shown = await findTask(http, parseTaskRef(id), o.full);
      const { steps } = await http.ok<{ steps: StepJson[] }>("GET", `/v1/tasks/${shown.task.taskId.taskUuid}/steps`);
      if (o.json) return void console.log(JSON.stringify({ ...shown, steps }, null, 2));
      const more = [renderSteps(steps), renderHistory(shown.history ?? [])].filter(Boolean);
      console.log([renderTask(shown.task, shown.attempts, Date.now(), shown.cut, o.full), ...more].join("\n\n"));
    });

  connection(task.command("cancel"))
    .description("cancel a task")
    .argument("[task-id]", `${TASK_ID_FORMS}, instead of the three flags`)
    .option("--state-type <type>", "the task's state type")
    .option("--state-id <id>", "the task's state id")
    .option("--task-uuid <uuid>", "the task's uuid, or the start of it")
    .action(async (id: string | undefined, o: Connection & { stateType?: string; stateId?: string; taskUuid?: string }) => {
      let ref: TaskRef;
      if (id) ref = { stateType: o.stateType, stateId: o.stateId, ...parseTaskRef(id) };
      else if (o.taskUuid && o.stateType && o.stateId) ref = { ...parseTaskRef(o.taskUuid), stateType: o.stateType, stateId: o.stateId };
      else throw new MendError("INVALID_ARGUMENT", "Give --state-type, --state-id and --task-uuid, or a task id.");
      const http = client(o);
      const { task: found } = await findTask(http, ref);
      await act(http, `/v1/tasks/${found.taskId.taskUuid}/cancel`, "Task cancelled.");
    });

  connection(task.command("rerun"))
    .description("rerun a workflow task from one of its recorded steps (mend task show lists them): that step and the ones after it are forgotten, and the task runs now")
    .argument("<task-id>", TASK_ID_FORMS)
    .requiredOption("--from-step <alias>", "the alias of the first step to run again")
    .action(async (id: string, o: Connection & { fromStep: string }) => {
      const http = client(o);
      const { task: found } = await findTask(http, parseTaskRef(id));
      const { status, body } = await http.request<{ forgotten: string[]; spawns: string[]; loop?: { alias: string; iteration: number } }>(
        "POST",
        `/v1/tasks/${found.taskId.taskUuid}/rerun`,
        { fromStep: o.fromStep, by: "cli" },
      );
      if (status === 409 || status === 404) {
        // Nothing done, and why: a finished or running task, an atMostOnce step, a step it does not have.
        console.log(body.error?.message ?? "Nothing to rerun.");
        process.exitCode = 1;
        return;
      }
      if (status >= 400) throw errorFrom(status, body);
      console.log(rerunDone(o.fromStep, body));
    });

  connection(task.command("retry"))
    .description("run a scheduled or failing task now, its backoff reset")
    .argument("<task-id>", TASK_ID_FORMS)
    .action(async (id: string, o: Connection) => {
      const http = client(o);
      const { task: found } = await findTask(http, parseTaskRef(id));
      await act(http, `/v1/tasks/${found.taskId.taskUuid}/retry`, "Task will run now.");
    });
}
