import type { Command } from "commander";
import { MendError } from "../api/errors.js";
import { TaskId } from "../api/task-id.js";
import { errorFrom, HttpClient } from "../client/external.js";
import type { AttemptInfo, TaskInfo } from "../runtime/runtime.js";
import { cut, duration, relativeTime, table } from "./format.js";

const DEFAULT_URL = "http://localhost:9991";
const STATUSES = ["SCHEDULED", "STARTED", "SCHEDULED_RETRY", "SCHEDULED_ITERATION", "COMPLETED", "ABORTED", "CANCELLED"];

type TaskJson = TaskInfo & { id: string };

interface Connection {
  applicationUrl: string;
  adminCredential?: string;
}

function client(o: Connection): HttpClient {
  return new HttpClient({ url: o.applicationUrl, adminCredential: o.adminCredential ?? process.env.MEND_ADMIN_CREDENTIAL });
}

/** A task given as a uuid or as a whole task id. */
function uuidOf(text: string): string {
  if (TaskId.isUuid(text)) return text;
  return TaskId.parse(text).taskUuid;
}

function stateOf(id: TaskId): string {
  return `${id.stateType}('${id.stateId}')`;
}

function connection(cmd: Command): Command {
  return cmd
    .option("--application-url <url>", "the application's URL", DEFAULT_URL)
    .option("--admin-credential <secret>", "the admin secret of a server that requires one (or MEND_ADMIN_CREDENTIAL)");
}

export function registerTaskCommands(program: Command): void {
  const task = program.command("task").description("inspect and act on the tasks of a running application");

  connection(task.command("list"))
    .description("list every task, newest first")
    .option("--status <status>", `only tasks with this status (${STATUSES.join(", ")})`)
    .option("--state-type <type>", "only tasks of this state type")
    .option("--state-id <id>", "only tasks of this state instance")
    .option("--method <method>", "only tasks of this method")
    .option("--json", "print JSON")
    .action(async (o: Connection & { status?: string; stateType?: string; stateId?: string; method?: string; json?: boolean }) => {
      if (o.status && !STATUSES.includes(o.status.toUpperCase()))
        throw new MendError("INVALID_ARGUMENT", `--status must be one of ${STATUSES.join(", ")}; got '${o.status}'.`);
      const http = client(o);
      const tasks: TaskJson[] = [];
      let before: number | null | undefined;
      do {
        const query = new URLSearchParams({ limit: "1000" });
        if (o.status) query.set("status", o.status.toUpperCase());
        if (o.stateType) query.set("stateType", o.stateType);
        if (o.stateId) query.set("stateId", o.stateId);
        if (o.method) query.set("method", o.method);
        if (before) query.set("before", String(before));
        const page = await http.ok<{ tasks: TaskJson[]; next: number | null }>("GET", `/v1/tasks?${query}`);
        tasks.push(...page.tasks);
        before = page.next;
      } while (before);
      if (o.json) return void console.log(JSON.stringify(tasks, null, 2));
      if (tasks.length === 0) return void console.log("No tasks.");
      const now = Date.now();
      const rows = tasks.map((t) => [
        t.taskId.taskUuid,
        stateOf(t.taskId),
        t.method,
        t.status,
        relativeTime(t.dueAt ?? t.updatedAt, now),
        String(t.attempts),
        t.lastError ?? "",
      ]);
      console.log(table(["TASK UUID", "STATE", "METHOD", "STATUS", "WHEN", "ATTEMPTS", "LAST ERROR"], rows, process.stdout.columns || 160));
    });

  connection(task.command("show"))
    .description("show a task and every attempt it made")
    .argument("<task-id>", "a task uuid or a whole task id (Type/stateId/uuid)")
    .option("--json", "print JSON")
    .action(async (id: string, o: Connection & { json?: boolean }) => {
      const { task: t, attempts } = await client(o).ok<{ task: TaskJson; attempts: AttemptInfo[] }>("GET", `/v1/tasks/${uuidOf(id)}`);
      if (o.json) return void console.log(JSON.stringify({ task: t, attempts }, null, 2));
      console.log(renderTask(t, attempts, Date.now()));
    });

  connection(task.command("cancel"))
    .description("cancel a task")
    .argument("[task-id]", "a whole task id (Type/stateId/uuid), instead of the three flags")
    .option("--state-type <type>", "the task's state type")
    .option("--state-id <id>", "the task's state id")
    .option("--task-uuid <uuid>", "the task's uuid")
    .action(async (id: string | undefined, o: Connection & { stateType?: string; stateId?: string; taskUuid?: string }) => {
      let taskId: TaskId;
      if (id) taskId = TaskId.isUuid(id) ? { stateType: o.stateType ?? "", stateId: o.stateId ?? "", taskUuid: id } : TaskId.parse(id);
      else if (o.taskUuid && o.stateType && o.stateId) taskId = { stateType: o.stateType, stateId: o.stateId, taskUuid: o.taskUuid };
      else throw new MendError("INVALID_ARGUMENT", "Give --state-type, --state-id and --task-uuid, or a whole task id.");
      if (!TaskId.isUuid(taskId.taskUuid)) throw new MendError("INVALID_ARGUMENT", `'${taskId.taskUuid}' is not a task uuid.`);
      const http = client(o);
      const shown = await http.request<{ task?: TaskJson }>("GET", `/v1/tasks/${taskId.taskUuid}`);
      if (shown.status >= 400) throw errorFrom(shown.status, shown.body);
      const found = shown.body.task!.taskId;
      if ((taskId.stateType && found.stateType !== taskId.stateType) || (taskId.stateId && found.stateId !== taskId.stateId))
        throw new MendError("TASK_NOT_FOUND", `Task ${taskId.taskUuid} belongs to ${stateOf(found)}, not ${stateOf(taskId)}.`);
      const { status, body } = await http.request("POST", `/v1/tasks/${taskId.taskUuid}/cancel`);
      if (status === 409) {
        console.log("Task is not running.");
        process.exitCode = 1;
        return;
      }
      if (status >= 400) throw errorFrom(status, body);
      console.log("Task cancelled.");
    });

  connection(task.command("retry"))
    .description("run a scheduled or failing task now, its backoff reset")
    .argument("<task-id>", "a task uuid or a whole task id")
    .action(async (id: string, o: Connection) => {
      const { status, body } = await client(o).request("POST", `/v1/tasks/${uuidOf(id)}/retry`);
      if (status === 409) {
        console.log("Task is running or has finished; nothing to retry.");
        process.exitCode = 1;
        return;
      }
      if (status >= 400) throw errorFrom(status, body);
      console.log("Task will run now.");
    });
}

export function renderTask(t: TaskJson, attempts: AttemptInfo[], now: number): string {
  const lines = [
    `Task      ${t.id}`,
    `State     ${stateOf(t.taskId)}`,
    `Method    ${t.method}`,
    `Status    ${t.status}`,
    `Created   ${new Date(t.createdAt).toISOString()} (${relativeTime(t.createdAt, now)})`,
  ];
  if (t.dueAt !== null) lines.push(`Due       ${new Date(t.dueAt).toISOString()} (${relativeTime(t.dueAt, now)})`);
  if (t.lastError) lines.push(`Error     ${cut(t.lastError, 200)}`);
  if (t.response !== undefined) lines.push(`Response  ${JSON.stringify(t.response)}`);
  if (t.error !== undefined) lines.push(`Declared  ${JSON.stringify(t.error)}`);
  lines.push("", attempts.length === 0 ? "No attempts yet." : `Attempts (${attempts.length}):`);
  for (const a of attempts) {
    const took = a.endedAt === null ? "running" : duration(a.endedAt - a.startedAt);
    lines.push(`  #${a.number}  ${a.version}  ${new Date(a.startedAt).toISOString()}  ${took}  ${a.outcome ?? "RUNNING"}`);
    if (a.error) {
      const stack = a.error.stack ?? `${a.error.name ?? "Error"}: ${a.error.message ?? ""}`;
      for (const l of stack.split("\n")) lines.push(`      ${l}`);
    }
  }
  return lines.join("\n");
}
