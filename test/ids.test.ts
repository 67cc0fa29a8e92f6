// State ids, state types and method names are checked before anything is written (issue 13,
// item 7): a lone surrogate would be stored as another id (and made `TaskId.format` throw
// after the task was committed, so the client heard 500 for a spawn that happened).
import { describe, expect, test } from "vitest";
import { ExternalContext, InvalidArgument, TaskId } from "mend";
import bank from "../fixtures/bank/src/main.js";
import { Account } from "../fixtures/bank/src/api.js";
import { checkName, isWellFormed, MAX_NAME_LENGTH, nameProblem } from "../src/api/ids.js";
import { copyFixture, serve } from "./helpers/cli.js";
import { start } from "./helpers/runtimes.js";

const LONE = "k\ud800";
const TOO_LONG = "x".repeat(MAX_NAME_LENGTH + 1);

describe("the rule (pure)", () => {
  test("a name is a non-empty, well-formed string of at most 1000 characters", () => {
    expect(nameProblem("alice")).toBeUndefined();
    expect(nameProblem("emoji 🙂 and 日本")).toBeUndefined();
    expect(nameProblem("x".repeat(MAX_NAME_LENGTH))).toBeUndefined();
    expect(nameProblem(LONE)).toMatch(/lone surrogate/);
    expect(nameProblem("\udc00k")).toMatch(/lone surrogate/);
    expect(nameProblem(TOO_LONG)).toMatch(/at most 1000 characters/);
    expect(nameProblem("")).toMatch(/empty/);
    expect(nameProblem(7)).toMatch(/must be a string, got number/);
    expect(isWellFormed("🙂")).toBe(true);
    expect(() => checkName(LONE, "The state id")).toThrow(InvalidArgument);
  });

  test("TaskId.format never throws, even for an id that got into an old store", () => {
    expect(TaskId.format({ stateType: "Account", stateId: LONE, taskUuid: TaskId.newUuid() })).toMatch(/^Account\/k%EF%BF%BD\//);
  });
});

describe("in-process", () => {
  test("Type.ref(), runtime.call and runtime.spawn refuse bad names and write nothing", async () => {
    const rt = await start(bank);
    const ctx = rt.context();
    expect(() => Account.ref(LONE)).toThrow("The state id given to Account.ref() is not well-formed Unicode (it has a lone surrogate).");
    expect(() => Account.ref(TOO_LONG)).toThrow(/at most 1000 characters/);
    const deposit = { stateType: "Account", stateId: "k", method: "deposit" };
    for (const target of [{ ...deposit, stateId: LONE }, { ...deposit, stateType: "Acc\ud800" }, { ...deposit, method: "dep\udfff" }, { ...deposit, stateId: TOO_LONG }]) {
      await expect(rt.call(target, { amount: 1 })).rejects.toBeInstanceOf(InvalidArgument);
      await expect(rt.spawn(target, { amount: 1 })).rejects.toBeInstanceOf(InvalidArgument);
    }
    expect(await rt.listTasks({ limit: 10 })).toEqual([]);
    expect(await Account.ref("k").balance(ctx)).toEqual({ balance: 0 });
    // The same id, well-formed, works.
    expect(await Account.ref("k\ud83d\ude42").deposit(ctx, { amount: 1 })).toEqual({ balance: 1 });
  });
});

describe("over HTTP", () => {
  test("a lone surrogate in a call or a spawn is a 400, and nothing was committed", async () => {
    const { url } = await serve(copyFixture("bank"));
    const post = async (path: string, body: string) => {
      const response = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
      return { status: response.status, body: (await response.json()) as { error?: { code: string; message: string } } };
    };
    // Written as a JSON escape: the body itself is valid UTF-8, and JSON.parse makes the lone surrogate.
    const spawn = await post("/v1/tasks", '{"stateType":"Account","stateId":"k\\ud800","method":"deposit","request":{"amount":1}}');
    expect([spawn.status, spawn.body.error?.code]).toEqual([400, "INVALID_ARGUMENT"]);
    expect(spawn.body.error?.message).toMatch(/lone surrogate.*at stateId/s);
    const call = await post("/v1/call", '{"stateType":"Account","stateId":"k\\ud800","method":"deposit","request":{"amount":1}}');
    expect([call.status, call.body.error?.code]).toEqual([400, "INVALID_ARGUMENT"]);
    const method = await post("/v1/call", '{"stateType":"Account","stateId":"k","method":"deposit\\udc00","request":{"amount":1}}');
    expect(method.status).toBe(400);

    const tasks = await (await fetch(`${url}/v1/tasks`)).json();
    expect(tasks.tasks).toEqual([]);
    const ctx = new ExternalContext({ url });
    expect(await Account.ref("k\ufffd\ufffd\ufffd").balance(ctx)).toEqual({ balance: 0 });
    expect(await Account.ref("k\ufffd").balance(ctx)).toEqual({ balance: 0 });
  });
});
