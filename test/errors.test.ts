// mend's own errors as a caller sees them: each class's stable code, name and message; how
// an ending error is carried as data and revived; how an HTTP answer's code revives the
// same class; what a declared error (`<Method>Aborted`) says and matches; and how a thrown
// non-Error becomes one.
import { describe, expect, test } from "vitest";
import {
  Aborted,
  Cancelled,
  coerceError,
  DeadlineExceeded,
  endingErrorData,
  errorOfCode,
  IdempotencyConflict,
  InvalidArgument,
  isAborted,
  isEndingError,
  makeAbortedClass,
  MendError,
  MethodFailed,
  NotAllowed,
  PermissionDenied,
  reviveMendError,
  StateAlreadyConstructed,
  StateNotConstructed,
  TaskNotFound,
} from "../src/api/errors.js";
import { errorFrom } from "../src/client/external.js";
import { errorAnswer } from "../src/server/answer.js";

describe("each error mend raises has a stable code, its own name and a message that says what happened", () => {
  test.each([
    [new Cancelled(), "CANCELLED", "Cancelled", "The task was cancelled."],
    [new Cancelled("Cancelled by the operator."), "CANCELLED", "Cancelled", "Cancelled by the operator."],
    [new TaskNotFound("0190aaaa-0000-7000-8000-00000000000a"), "TASK_NOT_FOUND", "TaskNotFound", "No task 0190aaaa-0000-7000-8000-00000000000a."],
    [new InvalidArgument("amount: must be positive"), "INVALID_ARGUMENT", "InvalidArgument", "amount: must be positive"],
    [new NotAllowed("A reader cannot call a writer."), "NOT_ALLOWED", "NotAllowed", "A reader cannot call a writer."],
    [
      new DeadlineExceeded("Account.statement", 250),
      "DEADLINE_EXCEEDED",
      "DeadlineExceeded",
      "Account.statement ran past its time limit of 250 ms; it was stopped and changed nothing.",
    ],
    [new MethodFailed("TypeError", "x is not a function"), "METHOD_FAILED", "MethodFailed", "x is not a function"],
    [new PermissionDenied("Only alice may do this."), "PERMISSION_DENIED", "PermissionDenied", "Only alice may do this."],
    [new IdempotencyConflict("The key k was used for another call."), "IDEMPOTENCY_CONFLICT", "IdempotencyConflict", "The key k was used for another call."],
    [
      new StateNotConstructed("Account", "alice", ["open", "import"]),
      "STATE_NOT_CONSTRUCTED",
      "StateNotConstructed",
      "Account('alice') has not been constructed: call one of its constructors first (Account.open, Account.import).",
    ],
    [new StateAlreadyConstructed("Account", "alice"), "STATE_ALREADY_CONSTRUCTED", "StateAlreadyConstructed", "Account('alice') has already been constructed."],
    [new MendError("UNREACHABLE", "Cannot reach the application."), "UNREACHABLE", "MendError", "Cannot reach the application."],
  ] as const)("%s", (error, code, name, message) => {
    expect(error).toBeInstanceOf(MendError);
    expect(error).toBeInstanceOf(Error);
    expect({ code: error.code, name: error.name, message: error.message }).toEqual({ code, name, message });
    expect(String(error)).toBe(`${name}: ${message}`);
  });

  test("a MendError keeps the error it was raised for as its cause", () => {
    const cause = new Error("ECONNREFUSED");
    expect(new MendError("UNREACHABLE", "Cannot reach the application.", { cause }).cause).toBe(cause);
  });

  test("a method's failure seen by its caller keeps the remote error's name, and its stack when one was sent", () => {
    const remoteStack = "TypeError: x is not a function\n    at Object.preview (src/account.ts:30:32)";
    const sent = new MethodFailed("TypeError", "x is not a function", remoteStack);
    expect(sent.remoteName).toBe("TypeError");
    expect(sent.stack).toBe(remoteStack);
    // Without one, it has a stack of its own (where the caller saw it), never none.
    const local = new MethodFailed("TypeError", "x is not a function");
    expect(local.stack).toEqual(expect.stringContaining("x is not a function"));
    expect(local.stack).toContain("errors.test.ts");
  });

  test("a state that has no constructor named still says it has not been constructed", () => {
    expect(new StateNotConstructed("Account", "bob", ["open"]).message).toBe(
      "Account('bob') has not been constructed: call one of its constructors first (Account.open).",
    );
    expect(new StateNotConstructed("Account", "bob", ["open"], "Open it first.").message).toBe("Open it first.");
    expect(new StateAlreadyConstructed("Account", "bob", "It exists.").message).toBe("It exists.");
  });
});

describe("ending errors travel as data and come back as their class", () => {
  test("only the constructor errors end a call as they are", () => {
    expect(isEndingError(new StateNotConstructed("Account", "a", ["open"]))).toBe(true);
    expect(isEndingError(new StateAlreadyConstructed("Account", "a"))).toBe(true);
    expect(isEndingError(new Cancelled())).toBe(false);
    expect(isEndingError(new Error("x"))).toBe(false);
  });

  test("StateNotConstructed round-trips with its state, its constructors and its message", () => {
    const error = new StateNotConstructed("Account", "alice", ["open", "import"]);
    const data = JSON.parse(JSON.stringify(endingErrorData(error))) as unknown;
    expect(data).toEqual({ $mend: "STATE_NOT_CONSTRUCTED", stateType: "Account", stateId: "alice", constructors: ["open", "import"] });
    const revived = reviveMendError(data, error.message);
    expect(revived).toBeInstanceOf(StateNotConstructed);
    expect(revived).toMatchObject({ code: "STATE_NOT_CONSTRUCTED", stateType: "Account", stateId: "alice", constructors: ["open", "import"], message: error.message });
  });

  test("StateAlreadyConstructed round-trips with its state and its message", () => {
    const error = new StateAlreadyConstructed("Account", "alice", "Account alice exists.");
    const data = JSON.parse(JSON.stringify(endingErrorData(error))) as unknown;
    expect(data).toEqual({ $mend: "STATE_ALREADY_CONSTRUCTED", stateType: "Account", stateId: "alice" });
    const revived = reviveMendError(data, "Account alice exists.");
    expect(revived).toBeInstanceOf(StateAlreadyConstructed);
    expect(revived).toMatchObject({ code: "STATE_ALREADY_CONSTRUCTED", stateType: "Account", stateId: "alice", message: "Account alice exists." });
  });

  test("with no stored message, a revived error says what its class says", () => {
    expect(reviveMendError({ $mend: "STATE_NOT_CONSTRUCTED", stateType: "Account", stateId: "bob", constructors: ["open"] }, "")?.message).toBe(
      "Account('bob') has not been constructed: call one of its constructors first (Account.open).",
    );
    expect(reviveMendError({ $mend: "STATE_ALREADY_CONSTRUCTED", stateType: "Account", stateId: "bob" }, "")?.message).toBe(
      "Account('bob') has already been constructed.",
    );
  });

  test("stored data missing its fields revives with empty ones, not with made-up values", () => {
    const revived = reviveMendError({ $mend: "STATE_NOT_CONSTRUCTED" }, "Not constructed.");
    expect(revived).toBeInstanceOf(StateNotConstructed);
    expect(revived).toMatchObject({ stateType: "", stateId: "", constructors: [], message: "Not constructed." });
    expect(reviveMendError({ $mend: "STATE_ALREADY_CONSTRUCTED" }, "Exists.")).toMatchObject({ stateType: "", stateId: "", message: "Exists." });
  });

  test("another code of mend's revives as a MendError with that code, never as a constructor error", () => {
    const revived = reviveMendError({ $mend: "SOMETHING_NEWER", stateType: "Account", stateId: "a" }, "A newer mend's error.");
    expect(revived).toBeInstanceOf(MendError);
    expect(revived).not.toBeInstanceOf(StateAlreadyConstructed);
    expect(revived).not.toBeInstanceOf(StateNotConstructed);
    expect(revived).toMatchObject({ code: "SOMETHING_NEWER", message: "A newer mend's error." });
  });

  test("a declared error's data, or anything that is not mend's, is not revived as mend's", () => {
    for (const data of [{ type: "Overdraft", shortBy: 3 }, null, undefined, "Overdraft", 3, ["$mend"]])
      expect(reviveMendError(data, "Overdraft")).toBeUndefined();
  });
});

describe("an HTTP answer's code revives the same class on the client", () => {
  test.each([
    [new PermissionDenied("Only alice may do this."), 403, PermissionDenied],
    [new IdempotencyConflict("The key k was used for another call."), 409, IdempotencyConflict],
    [new InvalidArgument("amount: must be positive"), 400, InvalidArgument],
    [new NotAllowed("A reader cannot call a writer."), 403, NotAllowed],
    [new TaskNotFound("0190aaaa"), 404, MendError],
  ] as const)("%s", (error, status, cls) => {
    const answer = errorAnswer(error);
    expect(answer).toEqual({ status, error: { code: error.code, message: error.message } });
    const revived = errorFrom(answer.status, JSON.parse(JSON.stringify(answer)) as { error: { code: string; message: string } });
    expect(revived).toBeInstanceOf(cls);
    expect(revived).toMatchObject({ code: error.code, name: error.name === "TaskNotFound" ? "MendError" : error.name, message: error.message });
  });

  test("every code mend has a class for comes back as that class; any other as a MendError with its code", () => {
    expect(errorOfCode("PERMISSION_DENIED", "m")).toBeInstanceOf(PermissionDenied);
    expect(errorOfCode("IDEMPOTENCY_CONFLICT", "m")).toBeInstanceOf(IdempotencyConflict);
    expect(errorOfCode("CANCELLED", "Cancelled by the operator.")).toMatchObject({ name: "Cancelled", code: "CANCELLED", message: "Cancelled by the operator." });
    expect(errorOfCode("CANCELLED", "m")).toBeInstanceOf(Cancelled);
    expect(errorOfCode("INVALID_ARGUMENT", "m")).toBeInstanceOf(InvalidArgument);
    expect(errorOfCode("NOT_ALLOWED", "m")).toBeInstanceOf(NotAllowed);
    for (const code of ["STOPPED", "HTTP_502", ""]) {
      const e = errorOfCode(code, "The server answered 502.");
      expect(e.constructor).toBe(MendError);
      expect({ code: e.code, message: e.message }).toEqual({ code, message: "The server answered 502." });
    }
  });
});

describe("declared errors (<Method>Aborted)", () => {
  type Overdraft = { type: "Overdraft"; shortBy: number };
  const WithdrawAborted = makeAbortedClass<Overdraft>("Account", "withdraw");

  test("are named after their method, say their type, and carry the declared error", () => {
    expect(WithdrawAborted.name).toBe("WithdrawAborted");
    expect([WithdrawAborted.stateType, WithdrawAborted.method]).toEqual(["Account", "withdraw"]);
    const e = new WithdrawAborted({ type: "Overdraft", shortBy: 3 });
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(Aborted);
    expect({ name: e.name, message: e.message, error: e.error, stateType: e.stateType, method: e.method }).toEqual({
      name: "WithdrawAborted",
      message: "Overdraft",
      error: { type: "Overdraft", shortBy: 3 },
      stateType: "Account",
      method: "withdraw",
    });
    expect(String(e)).toBe("WithdrawAborted: Overdraft");
    expect(new WithdrawAborted({ type: "Overdraft", shortBy: 3 }, { message: "Short by 3." }).message).toBe("Short by 3.");
  });

  test("a declared error with no type says only that it aborted", () => {
    const Aborts = makeAbortedClass<unknown>("Job", "work");
    for (const error of ["Overdraft", 3, null, undefined, { shortBy: 3 }, [1]]) expect(new Aborts(error).message).toBe("aborted");
    expect(new Aborts({ type: 7 }).message).toBe("7");
  });

  test("match by state type and method, whichever class object made them, and nothing else", () => {
    const e = new WithdrawAborted({ type: "Overdraft", shortBy: 3 });
    // The same declaration loaded again (a new code version, a restart) makes a new class: it still matches.
    const again = makeAbortedClass<Overdraft>("Account", "withdraw");
    expect(e instanceof again).toBe(true);
    expect(new again({ type: "Overdraft", shortBy: 1 }) instanceof WithdrawAborted).toBe(true);
    expect(e instanceof makeAbortedClass("Account", "deposit")).toBe(false);
    expect(e instanceof makeAbortedClass("Savings", "withdraw")).toBe(false);
    expect(isAborted(e)).toBe(true);
    // What a catch may hold: anything thrown.
    for (const thrown of [null, undefined, "Overdraft", 3, new Error("Overdraft"), { type: "Overdraft" }]) {
      expect(thrown instanceof WithdrawAborted).toBe(false);
      expect(isAborted(thrown)).toBe(false);
    }
  });

  test("an Aborted of another copy of mend, marked under the registered symbol mend.aborted, matches too", () => {
    // Another copy (another version of the package, the built dist/ beside src/) has its own
    // module-local classes; the key it marks errors with is shared through Symbol.for.
    const foreign = Object.assign(new Error("Overdraft"), { [Symbol.for("mend.aborted")]: "Account.withdraw" });
    expect(isAborted(foreign)).toBe(true);
    expect(foreign instanceof WithdrawAborted).toBe(true);
    expect(Object.getOwnPropertySymbols(new WithdrawAborted({ type: "Overdraft", shortBy: 1 }))).toContain(Symbol.for("mend.aborted"));
  });
});

describe("coerceError turns anything thrown into an Error that says what it was", () => {
  test("an Error is kept as it is", () => {
    const e = new RangeError("r");
    expect(coerceError(e)).toBe(e);
  });

  test.each([
    ["a string", "s", '"s"'],
    ["undefined", undefined, "undefined"],
    ["null", null, "null"],
    ["a number", 42, "42"],
    ["an object", { a: 1 }, '{"a":1}'],
    ["a function", () => 1, "() => 1"],
    ["a symbol", Symbol("s"), "Symbol(s)"],
  ])("%s", (_what, thrown, text) => {
    const e = coerceError(thrown);
    expect({ name: e.name, message: e.message }).toEqual({ name: "NonErrorThrown", message: `A non-Error value was thrown: ${text}` });
  });

  test("a value JSON cannot hold (a cycle, a BigInt) is shown as Node prints it, on one line, three levels deep", () => {
    const cyclic: Record<string, unknown> = { name: "a fairly long name to make the line long", list: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], more: "x".repeat(40) };
    cyclic.self = cyclic;
    const message = coerceError(cyclic).message;
    expect(message).toMatch(/^A non-Error value was thrown: <ref \*1> \{ name: 'a fairly long name to make the line long', /);
    expect(message).toContain("self: [Circular *1]");
    expect(message).not.toContain("\n");
    expect(coerceError({ n: 1n, a: { b: { c: { d: 1 } } } }).message).toBe("A non-Error value was thrown: { n: 1n, a: { b: { c: { d: 1 } } } }");
    expect(coerceError({ n: 1n, a: { b: { c: { d: { e: 1 } } } } }).message).toBe("A non-Error value was thrown: { n: 1n, a: { b: { c: { d: [Object] } } } }");
  });
});
