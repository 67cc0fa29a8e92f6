import { MendError, TaskNotFound } from "../api/errors.js";
import type { Kind } from "../api/context.js";
import { COUNT_CAP } from "../store/inspect-statements.js";
import { FINISHED, type TaskStatus } from "../store/statements.js";
import type { Store } from "../store/store.js";
import type { Engine } from "./engine.js";
import { attemptOfStep, isRefusal, placeSteps, planRerun, type StepPlace, type StepRecord } from "./steps.js";

/** Who asked for a rerun, as the task's history records it. */
export type RerunBy = "dashboard" | "cli" | "api";
export const RERUN_BY: readonly RerunBy[] = ["dashboard", "cli", "api"];

export interface RerunResult {
  /** The steps forgotten, in the order they were recorded. */
  forgotten: string[];
  /** Forgotten spawns: their tasks go on; the next attempt spawns new ones. */
  spawns: string[];
  /** The loop set back to the iteration of the chosen step, if any. */
  loop?: { alias: string; iteration: number };
}

/** A workflow step as the dashboard shows it. */
export interface StepInfo extends StepPlace {
  alias: string;
  kind: string;
  /** What the alias stands for: `Account('alice').charge()`, `atMostOnce()`. */
  step: string;
  /** `started` (an atMostOnce that never ended), `completed`, or `failed` (a declared error, or a retryable error of atMostOnce). */
  status: string;
  /** The recorded value; left out when over `STEP_VALUE_BYTES` (see `cut`). */
  value?: unknown;
  cut?: { bytes: number; preview: string };
  recordedAt: number;
  /** The attempt that recorded it last. */
  attempt: number | null;
}

export interface HistoryEntry {
  at: number;
  action: string;
  by: string;
  detail: unknown;
}

export interface StateTypeInfo {
  name: string;
  /** Its methods in the loaded code; none for a type only the store still has. */
  methods: { name: string; kind: Kind }[];
  inCode: boolean;
  /** Instances in the store, counted up to COUNT_CAP (`more` beyond). */
  instances: number;
  more: boolean;
}

/** Recorded values larger than this, as JSON, are not sent whole with a task's steps. */
export const STEP_VALUE_BYTES = 64 * 1024;
/** A state larger than this is sent whole only when asked for. */
export const STATE_VALUE_BYTES = 1024 * 1024;

const STATUSES: readonly TaskStatus[] = ["SCHEDULED", "STARTED", "SCHEDULED_RETRY", "SCHEDULED_ITERATION", "COMPLETED", "ABORTED", "CANCELLED"];

/** A rerun that cannot be done, and why. */
export class RerunRefused extends MendError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = "RerunRefused";
  }
}

/**
 * The dashboard's reads of the store (a workflow's steps, a task's history, state types and
 * instances, counts) and rerunning a workflow from a step.
 * @internal
 */
export class Inspector {
  constructor(
    private readonly store: Store,
    private readonly engine: Engine,
  ) {}

  /** A task's recorded steps, in the order it first recorded them. */
  async steps(taskUuid: string): Promise<StepInfo[]> {
    if (!(await this.store.getTask(taskUuid))) throw new TaskNotFound(taskUuid);
    const rows = await this.store.inspect.listSteps(taskUuid, STEP_VALUE_BYTES);
    const attempts = (await this.store.listAttempts(taskUuid)).map((a) => ({ number: a.number, startedAt: a.started_at, endedAt: a.ended_at }));
    const places = placeSteps(rows.map(record));
    return rows.map((r, i) => ({
      alias: r.alias,
      kind: r.kind,
      step: r.step,
      status: r.status,
      ...(r.value !== null ? { value: JSON.parse(r.value) as unknown } : {}),
      ...(r.preview !== null ? { cut: { bytes: r.bytes ?? 0, preview: r.preview } } : {}),
      recordedAt: r.updated_at,
      attempt: attemptOfStep(r.updated_at, attempts, r.kind),
      ...places[i],
    }));
  }

  async history(taskUuid: string): Promise<HistoryEntry[]> {
    return (await this.store.inspect.history(taskUuid)).map((h) => ({ at: h.at, action: h.action, by: h.by, detail: JSON.parse(h.detail) as unknown }));
  }

  /** The state types of the loaded code, then those only the store still has. */
  async stateTypes(): Promise<StateTypeInfo[]> {
    const inCode = this.engine.version.application.servicers.map((s) => s.definition);
    const names = new Set(inCode.map((d) => d.name));
    const count = async (name: string) => {
      const n = await this.store.inspect.countInstances(name);
      return { instances: Math.min(n, COUNT_CAP), more: n > COUNT_CAP };
    };
    const onlyStored = (await this.store.inspect.stateTypes()).filter((n) => !names.has(n));
    return Promise.all([
      ...inCode.map(async (d) => ({ name: d.name, methods: [...d.methods.values()].map((m) => ({ name: m.name, kind: m.kind })), inCode: true, ...(await count(d.name)) })),
      ...onlyStored.map(async (name) => ({ name, methods: [], inCode: false, ...(await count(name)) })),
    ]);
  }

  /** A page of a type's instances in id order, whose ids start with `prefix`; pass `next` as `after` for the next page. */
  async instances(type: string, o: { prefix?: string; after?: string; limit: number }): Promise<{ instances: { stateId: string; bytes: number; preview: string }[]; next: string | null }> {
    const rows = await this.store.inspect.instances(type, o.prefix ?? "", o.after ?? "", o.limit);
    return {
      instances: rows.map((r) => ({ stateId: r.state_id, bytes: r.bytes, preview: r.preview })),
      next: rows.length === o.limit ? rows.at(-1)!.state_id : null,
    };
  }

  /** One instance's durable state (as readers see it); undefined if it was never written. */
  async state(type: string, id: string, full = false): Promise<{ exists: boolean; bytes: number; state?: unknown; cut?: { bytes: number; preview: string } }> {
    const json = (await this.store.readState(type, id))?.json;
    if (json === undefined) return { exists: false, bytes: 0 };
    const bytes = Buffer.byteLength(json);
    if (!full && bytes > STATE_VALUE_BYTES) return { exists: true, bytes, cut: { bytes, preview: json.slice(0, 2000) } };
    return { exists: true, bytes, state: JSON.parse(json) as unknown };
  }

  /** The code versions `mend dev run` recorded in this store (across its runs), newest first. */
  async versions(limit = 200): Promise<{ version: string; loadedAt: number; changed: string[]; buildMs: number | null; loadMs: number | null }[]> {
    return (await this.store.inspect.versions(limit)).map((v) => ({
      version: `v${v.number}`,
      loadedAt: v.loaded_at,
      changed: JSON.parse(v.changed) as string[],
      buildMs: v.build_ms,
      loadMs: v.load_ms,
    }));
  }

  /** Tasks per status, each counted up to COUNT_CAP. */
  async counts(): Promise<Record<TaskStatus, { count: number; more: boolean }>> {
    const out = {} as Record<TaskStatus, { count: number; more: boolean }>;
    for (const status of STATUSES) {
      const n = await this.store.inspect.countStatus(status);
      out[status] = { count: Math.min(n, COUNT_CAP), more: n > COUNT_CAP };
    }
    return out;
  }

  /** See Runtime.rerun. */
  async rerun(taskUuid: string, fromStep: string, by: RerunBy): Promise<RerunResult> {
    const row = await this.store.getTask(taskUuid);
    if (!row) throw new TaskNotFound(taskUuid);
    const refused = taskRefusal(row.status);
    if (refused) throw refused;
    // Planned from what the store holds now; committed only if the task has made no attempt
    // since (its steps are the ones read), with the retry that makes it due.
    const plan = planRerun(await this.#records(taskUuid), fromStep);
    if (isRefusal(plan)) throw new RerunRefused(plan.code, plan.message);
    const retried = await this.engine.retryNow(taskUuid, {
      attempts: row.attempts,
      then: (w) => {
        for (const alias of plan.forget) w.forgetStep(taskUuid, alias);
        if (plan.loop) w.setLoopIteration(taskUuid, plan.loop.alias, plan.loop.iteration);
        w.addHistory({ uuid: taskUuid, at: Date.now(), action: "rerun", by, detail: JSON.stringify({ fromStep, forgotten: plan.forget, ...(plan.loop ? { loop: plan.loop } : {}) }) });
      },
    });
    if (!retried) {
      const now = (await this.store.getTask(taskUuid))!;
      throw taskRefusal(now.status) ?? new RerunRefused("RUNNING", "Task is about to run, or ran since its steps were read; rerun from a step once its attempt has ended.");
    }
    const result: RerunResult = { forgotten: plan.forget, spawns: plan.spawns, ...(plan.loop ? { loop: plan.loop } : {}) };
    if (this.engine.listenerCount("task:rerun") > 0)
      this.engine.emit("task:rerun", { taskId: { stateType: row.state_type, stateId: row.state_id, taskUuid }, fromStep, forgotten: plan.forget, by });
    return result;
  }

  async #records(taskUuid: string): Promise<StepRecord[]> {
    return (await this.store.inspect.listSteps(taskUuid, STEP_VALUE_BYTES)).map(record);
  }
}

function record(r: { alias: string; kind: string; status: string; value: string | null }): StepRecord {
  const out: StepRecord = { alias: r.alias, kind: r.kind, status: r.status };
  if (r.kind === "loop" && r.value !== null) {
    const iteration = (JSON.parse(r.value) as { iteration?: unknown } | null)?.iteration;
    if (typeof iteration === "number") out.iteration = iteration;
  }
  return out;
}

/** Why a task's steps cannot be rerun now, whatever the step: it has finished, or it is running. */
export function taskRefusal(status: TaskStatus): RerunRefused | undefined {
  if (FINISHED.has(status))
    return new RerunRefused(
      "FINISHED",
      `Task has finished (${status}); a finished task cannot be rerun: its outcome is final and may have been seen. Spawn it again to run it anew.`,
    );
  if (status === "STARTED") return new RerunRefused("RUNNING", "Task is running; rerun from a step once its attempt has ended (or cancel it).");
  return undefined;
}
