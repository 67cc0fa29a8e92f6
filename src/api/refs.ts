import { randomUUID } from "node:crypto";
import { z } from "zod";
import { CALLER, type CallMode, type CallTarget, type Context } from "./context.js";
import { MendError, NotAllowed } from "./errors.js";
import { checkName } from "./ids.js";
import { TaskId, type TaskOptions } from "./task-id.js";
import { Task, reviveOutcome } from "./task.js";
import type { MethodDefinition, Servicer, StateTypeDefinition } from "./define.js";

// The values `defineApi` makes: a state type with its refs, constructors, Aborted and Task
// classes, and schemas. Every call goes through the context's Caller.

const DEFINITION = Symbol.for("mend.definition");

function capitalize(s: string): string {
  return s[0]!.toUpperCase() + s.slice(1);
}

export function makeStateType(definition: StateTypeDefinition): unknown {
  const type: Record<string | symbol, unknown> = {
    name: definition.name,
    [DEFINITION]: definition,
    State: definition.state,
    ref: (stateId?: string) => makeRef(definition, stateId),
    idempotently: (alias?: string) => constructors(definition, { kind: "idempotently", ...(alias === undefined ? {} : { alias }) }),
    perWorkflow: (alias: string) => constructors(definition, { kind: "perWorkflow", alias }),
    servicer: (impl: Record<string, unknown>): Servicer => {
      for (const method of definition.methods.keys())
        if (typeof impl[method] !== "function")
          throw new MendError("INVALID_SERVICER", `The servicer of ${definition.name} has no method '${method}'.`);
      const { authorizer, ...methods } = impl;
      if (authorizer !== undefined && typeof authorizer !== "function")
        throw new MendError("INVALID_SERVICER", `The authorizer of ${definition.name} must be a function returning allow(), deny() or an Error.`);
      for (const key of Object.keys(methods))
        if (!definition.methods.has(key))
          throw new MendError("INVALID_SERVICER", `The servicer of ${definition.name} has '${key}', which is not a method of its declaration.`);
      return { definition, impl: methods as Servicer["impl"], ...(authorizer ? { authorizer: authorizer as Servicer["authorizer"] } : {}) };
    },
    ...constructors(definition),
  };
  for (const m of definition.methods.values()) {
    const Name = capitalize(m.name);
    type[`${Name}Aborted`] = m.Aborted;
    type[`${Name}Request`] = m.request;
    type[`${Name}Response`] = m.response;
    type[`${Name}Task`] = {
      retrieve(ctx: Context, options: { taskId: TaskId | string }) {
        const taskId = typeof options.taskId === "string" ? TaskId.parse(options.taskId) : options.taskId;
        return new Task(ctx[CALLER], taskId, m);
      },
    };
  }
  return type;
}

/**
 * The constructors called on the type: `Account.open(ctx, id?, request)` gives `[ref,
 * response]`. Without an id, the context's caller makes one (a new one, or the one a repeat
 * of the same idempotent call finds again).
 */
function constructors(definition: StateTypeDefinition, mode?: CallMode): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of definition.constructors) {
    out[name] = async (ctx: Context, ...args: unknown[]) => {
      const named = args.length >= 2 || typeof args[0] === "string";
      const request = named ? args[1] : args[0];
      let stateId = named ? (args[0] as string) : undefined;
      let callMode = mode;
      if (stateId === undefined) {
        const made = ctx[CALLER].construct?.(definition.name, name, mode) ?? { stateId: randomUUID(), mode };
        stateId = made.stateId;
        callMode = made.mode;
      }
      const ref = makeRef(definition, stateId) as Record<string, unknown>;
      const call = makeRef(definition, stateId, callMode) as Record<string, (ctx: Context, request: unknown) => Promise<unknown>>;
      return [ref, await call[name]!(ctx, request)];
    };
  }
  return out;
}

function validateRequest(method: MethodDefinition, target: CallTarget, request: unknown): unknown {
  const parsed = method.request.safeParse(request ?? {});
  if (!parsed.success)
    throw new MendError("INVALID_ARGUMENT", `Invalid request for ${target.stateType}.${target.method}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** The instance an own ref (`Type.ref()`) names: the one of the method whose context this is. */
function ownId(definition: StateTypeDefinition, ctx: Context): string {
  if (ctx.stateType !== definition.name || ctx.kind === "external")
    throw new NotAllowed(
      `${definition.name}.ref() with no id names the instance of the ${definition.name} method that calls it; ` +
        (ctx.kind === "external" ? "this context is from outside the application" : `this is a method of ${ctx.stateType || "another type"}`) +
        `: give an id, ${definition.name}.ref(id).`,
    );
  return ctx.stateId;
}

function makeRef(definition: StateTypeDefinition, stateId: string | undefined, mode?: CallMode): unknown {
  // Checked before any call can write under this id: a lone surrogate would be stored as another id.
  if (stateId !== undefined) checkName(stateId, `The state id given to ${definition.name}.ref()`);
  const idOf = (ctx: Context) => stateId ?? ownId(definition, ctx);
  const target = (ctx: Context, method: string): CallTarget => ({ stateType: definition.name, stateId: idOf(ctx), method });
  const methods = (make: (m: MethodDefinition) => unknown) =>
    Object.fromEntries([...definition.methods.values()].map((m) => [m.name, make(m)]));
  const instance = (ctx: Context) => ({ stateType: definition.name, stateId: idOf(ctx) });

  // A method of the declaration named like a workflow helper (read, write, …) keeps its name.
  const ref: Record<string, unknown> = {
    perWorkflow: (alias: string) => makeRef(definition, stateId, { kind: "perWorkflow", alias }),
    always: () => makeRef(definition, stateId, { kind: "always" }),
    read: (ctx: Context) => {
      const caller = ctx[CALLER];
      if (!caller.read) throw new NotAllowed(`${definition.name}.ref(…).read() is for workflows; elsewhere call a reader.`);
      return caller.read(instance(ctx), mode);
    },
    write: (ctx: Context, fn: (state: never) => unknown) => {
      const caller = ctx[CALLER];
      if (!caller.write) throw new NotAllowed(`${definition.name}.ref(…).write() is for workflows; elsewhere call a writer.`);
      if (typeof fn !== "function") throw new MendError("INVALID_ARGUMENT", `${definition.name}.ref(…).write(ctx, fn) needs a function.`);
      return caller.write(instance(ctx), fn, mode);
    },
    ...methods((m) => async (ctx: Context, request?: unknown) => {
      const t = target(ctx, m.name);
      const outcome = await ctx[CALLER].call(t, validateRequest(m, t, request), mode);
      return reviveOutcome(outcome, m);
    }),
    schedule: (options?: TaskOptions) =>
      methods((m) => (ctx: Context, request?: unknown) => {
        const t = target(ctx, m.name);
        return ctx[CALLER].enqueue(t, validateRequest(m, t, request), { mode: "schedule", when: options?.when, call: mode });
      }),
    spawn: (options?: TaskOptions) =>
      methods((m) => async (ctx: Context, request?: unknown) => {
        const t = target(ctx, m.name);
        const caller = ctx[CALLER];
        const taskId = await caller.enqueue(t, validateRequest(m, t, request), { mode: "spawn", when: options?.when, call: mode });
        return { task: new Task(caller, taskId, m) };
      }),
    idempotently: (alias?: string) => makeRef(definition, stateId, { kind: "idempotently", ...(alias === undefined ? {} : { alias }) }),
  };
  if (stateId !== undefined) ref.stateId = stateId;
  return ref;
}
