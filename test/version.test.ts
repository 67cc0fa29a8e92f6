// A loaded code version: what it resolves a method to (its time limit above all), and why it
// cannot resolve one.
import { expect, test } from "vitest";
import { Application, allow, defineApi, z } from "mend";
import { CodeVersion } from "../src/runtime/version.js";

// (The package's Application, as apps import it; the same class the sources define.)
const version = (id: string, app: Application) => new CodeVersion(id, app as unknown as ConstructorParameters<typeof CodeVersion>[1]);

const { Desk } = defineApi({
  Desk: {
    state: {},
    methods: {
      read: { kind: "reader", request: {}, response: z.void() },
      write: { kind: "writer", request: {}, response: z.void() },
      quick: { kind: "writer", request: {}, response: z.void(), timeout: { secs: 2 } },
      flow: { kind: "workflow", request: {}, response: z.void() },
    },
  },
});
const servicer = (authorizer?: () => ReturnType<typeof allow>) =>
  Desk.servicer({
    async read() {},
    async write() {},
    async quick() {},
    async flow() {},
    ...(authorizer ? { authorizer } : {}),
  });

test("time limits: the method's own, else the application's (60 s by default) for readers and writers; none for workflows", () => {
  const plain = version("v1", new Application({ servicers: [servicer()] }));
  expect(plain.resolve("Desk", "read")!.timeoutMs).toBe(60_000);
  expect(plain.resolve("Desk", "write")!.timeoutMs).toBe(60_000);
  expect(plain.resolve("Desk", "quick")!.timeoutMs).toBe(2_000);
  expect(plain.resolve("Desk", "flow")!.timeoutMs).toBe(Infinity);
  const strict = version("v2", new Application({ servicers: [servicer()], timeout: { secs: 5 } }));
  expect(strict.resolve("Desk", "write")!.timeoutMs).toBe(5_000);
  expect(strict.resolve("Desk", "quick")!.timeoutMs).toBe(2_000);
  expect(strict.resolve("Desk", "flow")!.timeoutMs).toBe(Infinity);
});

test("what cannot be resolved, and why, for a task waiting for code", () => {
  const v = version("v3", new Application({ servicers: [servicer()] }));
  expect(v.resolve("Desk", "erase")).toBeUndefined();
  expect(v.resolve("Shelf", "read")).toBeUndefined();
  expect(v.describeMissing("Desk", "erase")).toBe("The method Desk.erase does not exist in code version v3; the task waits for a version that has it.");
  expect(v.describeMissing("Shelf", "read")).toBe("The state type Shelf does not exist in code version v3; the task waits for a version that has it.");
});

test("authorizers by state type: none for a type without one, or a type not in the version", () => {
  const guarded = version("v4", new Application({ servicers: [servicer(() => allow())] }));
  expect(guarded.authorizer("Desk")).toBeTypeOf("function");
  expect(guarded.authorizer("Shelf")).toBeUndefined();
  expect(version("v5", new Application({ servicers: [servicer()] })).authorizer("Desk")).toBeUndefined();
});
