import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import type { Caller, CallMode, CallTarget, EnqueueOptions, Outcome } from "../api/context.js";
import { MendError, NotAllowed } from "../api/errors.js";
import { deriveId } from "../api/ids.js";
import { dueTime, type TaskId } from "../api/task-id.js";
import { AtMostOnceFailedBeforeCompleting, type AtMostOnceOptions, type LoopOptions, type UntilOptions, type WorkflowSteps } from "../api/workflow.js";
import type { StoreWriter } from "../store/store.js";
import type { RunOptions, RunResult, TaskHost } from "./executor.js";
import { aliasOf, describeStep, newScope, stored, type Memo, type Scope } from "./memo.js";
import type { CodeVersion, ResolvedMethod } from "./version.js";

/**
 * Thrown out of a workflow when an iteration of its loop is done: the engine stores the
 * counter and schedules the task for the next iteration (`SCHEDULED_ITERATION`).
 */
export class NextIteration extends Error {
  constructor(
    readonly alias: string,
    readonly iteration: number,
    readonly dueAt: number,
    /** Records the loop's counter at `at`, its attempt's end; runs in the commit that schedules the next iteration. */
    readonly record: (w: StoreWriter, at: number) => void,
  ) {
    super(`Iteration ${iteration - 1} of the loop "${alias}" is done; the workflow runs again for the next one.`);
    this.name = "NextIteration";
  }
}

/** The value of `until` as its schema gives it; a value that does not match fails the step. */
function checkUntil(schema: z.ZodType, value: unknown, alias: string): unknown {
  const parsed = schema.safeParse(value);
  if (!parsed.success)
    throw new MendError("INVALID_STEP", `The value of until("${alias}") does not match its schema: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** Resolves when `change` does or after `ms`, whichever is first; rejects if `signal` aborts. */
function firstOf(change: Promise<void>, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  const timer = sleep(ms, undefined, { signal: stop.signal });
  return Promise.race([change, timer]).finally(() => {
    signal.removeEventListener("abort", onAbort);
    if (!stop.signal.aborted) stop.abort();
    timer.catch(() => {});
  });
}

/** What a workflow run needs from the executor. */
export interface Runner {
  resolve(version: CodeVersion, target: CallTarget): ResolvedMethod;
  run(r: ResolvedMethod, stateId: string, request: unknown, options: RunOptions): Promise<RunResult>;
  readState(version: CodeVersion, stateType: string, stateId: string): Promise<Record<string, unknown>>;
  write(
    version: CodeVersion,
    target: { stateType: string; stateId: string },
    fn: (state: Record<string, unknown>) => unknown,
    options: { signal: AbortSignal; record?: (value: unknown) => (w: StoreWriter) => void },
  ): Promise<unknown>;
  watch(stateType: string, stateId: string, fn: () => void): () => void;
}

export interface WorkflowRunOptions {
  runner: Runner;
  host: TaskHost;
  memo: Memo;
  version: CodeVersion;
  signal: AbortSignal;
  taskId: TaskId;
  /** The plain caller of a workflow, for calls that are not memoised. */
  base: Caller;
}

const FIRST_WAIT_MS = 10;

/**
 * One attempt of a workflow: its calls and spawns are memoised per task and alias, and
 * it implements the helpers (atLeastOnce, atMostOnce, until) and `ctx.loop()`.
 */
export class WorkflowRun implements WorkflowSteps {
  /** Set once an iteration of the loop has ended: nothing more runs in this attempt. */
  next: NextIteration | undefined;
  #looping = false;

  constructor(private readonly o: WorkflowRunOptions) {}

  caller(): Caller {
    return {
      call: (target, request, mode) => this.#call(target, request, mode),
      enqueue: (target, request, options) => this.#enqueue(target, request, options),
      wait: (taskId) => (this.#active(), this.o.base.wait(taskId)),
      read: (target, mode) => this.#read(target, mode),
      write: (target, fn, mode) => this.#write(target, fn as (state: Record<string, unknown>) => unknown, mode),
      construct: (stateType, method, mode) => this.#construct(stateType, method, mode),
    };
  }

  /** Waits for the workflow's body; an iteration that ended wins over what the body did after. */
  settle<T>(body: Promise<T>): Promise<T> {
    return body.then(
      (value) => {
        if (this.next) throw this.next;
        return value;
      },
      (error: unknown) => {
        throw this.next ?? error;
      },
    );
  }

  #active(): void {
    if (this.next) throw this.next;
  }

  /**
   * The memo key of a step: `.perWorkflow(alias)` is the alias itself, once per workflow;
   * `.idempotently(alias)` is prefixed by its scope (a helper's fn, a loop's iteration); with
   * no alias it is the n-th step on its target in its scope.
   */
  #alias(scope: Scope, target: CallTarget, mode: CallMode | undefined): string {
    if (mode?.kind === "perWorkflow") return mode.alias;
    return aliasOf(scope, target, mode?.kind === "idempotently" ? mode.alias : undefined);
  }

  async #call(target: CallTarget, request: unknown, mode?: CallMode): Promise<Outcome> {
    this.#active();
    const { memo, runner, version, signal } = this.o;
    const scope = memo.scope();
    if (!scope.memoise || mode?.kind === "always") {
      scope.onRead?.(target.stateType, target.stateId);
      return this.o.base.call(target, request);
    }
    const r = runner.resolve(version, target);
    if (r.method.kind === "workflow") {
      const child = await this.#spawn(scope, target, request, { mode: "spawn", call: mode });
      return this.o.host.idle(this.o.taskId.taskUuid, this.o.host.wait(child));
    }

    const alias = this.#alias(scope, target, mode);
    const step = describeStep("call", target);
    const recorded = await memo.lookup(alias, "call", step);
    if (recorded?.status === "completed") return { status: "COMPLETED", response: recorded.value };
    if (recorded?.status === "failed") return { status: "ABORTED", ...(recorded.value as { error: unknown; message: string }) };

    const what = `The response of ${step}`;
    // A writer's or transaction's change and this record commit together: a crash cannot
    // leave the change without the record, so the call never runs twice.
    const onComplete = (outcome: Outcome) =>
      memo.write(alias, "call", step, "completed", outcome.status === "COMPLETED" ? outcome.response : undefined, what);
    const { outcome, committed } = await runner.run(r, target.stateId, request, { version, signal, onComplete });
    await committed;
    if (outcome.status === "ABORTED")
      await memo.record(alias, "call", step, "failed", { error: outcome.error, message: outcome.message }, `The declared error of ${step}`);
    return outcome;
  }

  #enqueue(target: CallTarget, request: unknown, options: EnqueueOptions): Promise<TaskId> {
    this.#active();
    const scope = this.o.memo.scope();
    if (!scope.memoise || options.call?.kind === "always") return this.o.base.enqueue(target, request, options);
    return this.#spawn(scope, target, request, options);
  }

  /** Spawns a child task once: its id is recorded in the commit that creates it. */
  async #spawn(scope: Scope, target: CallTarget, request: unknown, options: EnqueueOptions): Promise<TaskId> {
    const alias = this.#alias(scope, target, options.call);
    const step = describeStep("spawn", target);
    const recorded = await this.o.memo.lookup(alias, "spawn", step);
    if (recorded) return recorded.value as TaskId;
    return this.o.host.spawn(target, request, options.when, this.o.taskId.taskUuid, (taskId, w) =>
      this.o.memo.write(alias, "spawn", step, "completed", taskId, "A task id")(w),
    );
  }

  /** `Type.ref(id).read(ctx)`: the durable state, recorded as a step (read afresh with `.always()` or inside `until`). */
  async #read(instance: { stateType: string; stateId: string }, mode?: CallMode): Promise<unknown> {
    this.#active();
    const { memo, runner, version } = this.o;
    const scope = memo.scope();
    if (!scope.memoise || mode?.kind === "always") {
      scope.onRead?.(instance.stateType, instance.stateId);
      return runner.readState(version, instance.stateType, instance.stateId);
    }
    const target = { ...instance, method: "read()" };
    const alias = this.#alias(scope, target, mode);
    const step = describeStep("read", target);
    const recorded = await memo.lookup(alias, "read", step);
    if (recorded?.status === "completed") return recorded.value;
    const state = await runner.readState(version, instance.stateType, instance.stateId);
    return memo.record(alias, "read", step, "completed", state, `The state read by ${step}`);
  }

  /** `Type.ref(id).write(ctx, fn)`: an inline writer; its change and its record commit together, so it runs once. */
  async #write(instance: { stateType: string; stateId: string }, fn: (state: Record<string, unknown>) => unknown, mode?: CallMode): Promise<unknown> {
    this.#active();
    const { memo, runner, version, signal } = this.o;
    const scope = memo.scope();
    if (!scope.memoise || mode?.kind === "always") return stored(await runner.write(version, instance, fn, { signal }));
    const target = { ...instance, method: "write()" };
    const alias = this.#alias(scope, target, mode);
    const step = describeStep("write", target);
    const recorded = await memo.lookup(alias, "write", step);
    if (recorded?.status === "completed") return recorded.value;
    const value = await runner.write(version, instance, fn, {
      signal,
      record: (value) => memo.write(alias, "write", step, "completed", value, `The value of ${step}`),
    });
    return stored(value);
  }

  /** The id of a constructor called without one: the same on every retry (from the task, and the alias or the call's order). */
  #construct(stateType: string, method: string, mode?: CallMode): { stateId: string; mode?: CallMode } {
    const scope = this.o.memo.scope();
    const named = mode?.kind === "perWorkflow" ? mode.alias : mode?.kind === "idempotently" ? mode.alias : undefined;
    const key = named ?? aliasOf(scope, { stateType, stateId: "(new)", method }, undefined);
    // `.perWorkflow(alias)` is one step for the whole workflow (its call's memo key is the bare
    // alias), so its id must not depend on the loop iteration it runs in.
    const prefix = mode?.kind === "perWorkflow" ? "" : scope.prefix;
    return { stateId: deriveId(this.o.taskId.taskUuid, prefix, key), ...(mode ? { mode } : {}) };
  }

  // --- Helpers ----------------------------------------------------------------

  async atLeastOnce<T>(alias: string, fn: () => T | Promise<T>): Promise<T> {
    const { key, recorded } = await this.#step("atLeastOnce", alias);
    if (recorded?.status === "completed") return recorded.value as T;
    const value = await this.o.memo.within(newScope(`${key}/`), fn);
    return (await this.#finish(key, "atLeastOnce", alias, value)) as T;
  }

  async atMostOnce<T>(alias: string, fn: () => T | Promise<T>, options: AtMostOnceOptions): Promise<T> {
    const { key, recorded } = await this.#step("atMostOnce", alias);
    const { memo } = this.o;
    if (recorded?.status === "completed") return recorded.value as T;
    if (recorded?.status === "started") throw new AtMostOnceFailedBeforeCompleting(alias);
    await memo.record(key, "atMostOnce", describeStep("atMostOnce"), "started", undefined, "");
    let value: T;
    try {
      value = await memo.within(newScope(`${key}/`), fn);
    } catch (error) {
      // A retryable error means fn did nothing: a later attempt may start it again.
      if (options.retryableErrors?.some((cls) => error instanceof cls))
        await memo.record(key, "atMostOnce", describeStep("atMostOnce"), "failed", undefined, "");
      throw error;
    }
    return (await this.#finish(key, "atMostOnce", alias, value)) as T;
  }

  /**
   * Evaluates `fn` until it is truthy. When `fn` read a state (a reader, `read()`), the next
   * evaluation comes once one of those states is written, or after `maxInterval` at the latest;
   * when it read none, after a wait that starts at 10 ms and doubles up to `maxInterval`.
   */
  async until<T>(alias: string, fn: () => T | Promise<T>, options: UntilOptions): Promise<T> {
    const { key, recorded } = await this.#step("until", alias);
    const check = (value: unknown) => (options.schema ? checkUntil(options.schema, value, alias) : value) as T;
    if (recorded?.status === "completed") return check(recorded.value);
    const maxMs = dueTime(options.maxInterval ?? { secs: 1 }, 0);
    for (let wait = FIRST_WAIT_MS; ; wait = Math.min(wait * 2, maxMs)) {
      const watched = new Set<string>();
      const stops: (() => void)[] = [];
      let changed!: () => void;
      const change = new Promise<void>((resolve) => (changed = resolve));
      const onRead = (stateType: string, stateId: string) => {
        const instance = `${stateType}\u0000${stateId}`;
        if (watched.has(instance)) return;
        watched.add(instance);
        stops.push(this.o.runner.watch(stateType, stateId, changed));
      };
      try {
        const value = await this.o.memo.within(newScope(`${key}/`, false, onRead), fn);
        if (value) {
          check(value);
          return check(await this.#finish(key, "until", alias, value));
        }
        const delay = watched.size > 0 ? maxMs : Math.min(wait, maxMs);
        await this.o.host.idle(this.o.taskId.taskUuid, firstOf(change, delay, this.o.signal));
      } finally {
        for (const stop of stops) stop();
      }
      this.#active();
    }
  }

  /** Looks a helper's step up in the current scope. */
  async #step(kind: "atLeastOnce" | "atMostOnce" | "until" | "loop", alias: string) {
    this.#active();
    if (typeof alias !== "string" || alias === "")
      throw new MendError("INVALID_ARGUMENT", `${describeStep(kind)} needs a non-empty alias.`);
    const scope = this.o.memo.scope();
    const key = scope.prefix + alias;
    return { key, scope, recorded: await this.o.memo.lookup(key, kind, describeStep(kind)) };
  }

  #finish(key: string, kind: "atLeastOnce" | "atMostOnce" | "until", alias: string, value: unknown): Promise<unknown> {
    return this.o.memo.record(key, kind, describeStep(kind), "completed", value, `The value of ${kind}("${alias}")`);
  }

  // --- Loops -----------------------------------------------------------------

  loop(alias: string, options: LoopOptions): AsyncIterable<number> {
    return { [Symbol.asyncIterator]: () => this.#iterate(alias, options) };
  }

  #iterate(alias: string, options: LoopOptions): AsyncIterator<number> {
    const { memo } = this.o;
    let key = "";
    let iteration = -1;
    const end = (): IteratorResult<number> => {
      if (iteration >= 0) (memo.loopScope = undefined), (this.#looping = false);
      iteration = -2;
      return { value: undefined, done: true };
    };
    return {
      next: async () => {
        if (iteration === -2) return { value: undefined, done: true };
        if (iteration === -1) {
          const step = await this.#step("loop", alias);
          if (this.#looping || step.scope !== memo.root)
            throw new NotAllowed("ctx.loop() runs only at the top level of a workflow: not inside another loop or a helper's fn.");
          key = step.key;
          iteration = (step.recorded?.value as { iteration?: number } | undefined)?.iteration ?? 0;
          this.#looping = true;
        } else {
          // The body of `iteration` is done: the attempt ends, the next iteration is a new run.
          const next = iteration + 1;
          const dueAt = dueTime(options.interval, Date.now());
          const record = memo.write(key, "loop", describeStep("loop"), "started", { iteration: next }, "");
          end();
          this.next = new NextIteration(key, next, dueAt, record);
          throw this.next;
        }
        memo.loopScope = newScope(`${key}[${iteration}]/`);
        return { value: iteration, done: false };
      },
      return: async () => end(),
    };
  }
}
