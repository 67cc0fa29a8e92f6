// Sizes as people read them, and the edges of what a stored value may be.
import { describe, expect, test } from "vitest";
import { formatBytes, MAX_DEPTH, toStoredJson } from "../src/runtime/json.js";

test("sizes: bytes under a thousand, then kB, then MB, one decimal", () => {
  expect(formatBytes(0)).toBe("0 B");
  expect(formatBytes(999)).toBe("999 B");
  expect(formatBytes(1000)).toBe("1.0 kB");
  expect(formatBytes(999_949)).toBe("999.9 kB");
  expect(formatBytes(1_000_000)).toBe("1.0 MB");
  expect(formatBytes(12_345_678)).toBe("12.3 MB");
});

describe("a stored value's edges", () => {
  test("objects nested too deep are refused like arrays, naming where", () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < MAX_DEPTH; i++) deep = { a: deep };
    expect(() => toStoredJson(deep, "X")).toThrow(`X cannot be stored: the value${".a".repeat(MAX_DEPTH)} is nested more than ${MAX_DEPTH} levels deep.`);
    // One level less is stored.
    expect(toStoredJson((deep as { a: unknown }).a, "X")).toMatch(/^\{"a":/);
  });

  test("a value of exactly the limit is stored; one byte more is TOO_LARGE", () => {
    // '"' + 998 x + '"' = 1000 bytes.
    expect(toStoredJson("x".repeat(998), "X", 1000)).toHaveLength(1000);
    expect(() => toStoredJson("x".repeat(999), "X", 1000)).toThrow(expect.objectContaining({ code: "TOO_LARGE", message: "X is 1.0 kB as JSON, over the limit of 1.0 kB (maxValueBytes)." }));
  });

  test("the same object twice is not a cycle; an object inside itself is, with its path", () => {
    const shared = { n: 1 };
    expect(toStoredJson({ a: shared, b: [shared] }, "X")).toBe('{"a":{"n":1},"b":[{"n":1}]}');
    const loop: Record<string, unknown> = { n: 1 };
    loop.self = { back: loop };
    expect(() => toStoredJson(loop, "X")).toThrow(expect.objectContaining({ code: "NOT_STORABLE", message: "X cannot be stored: the value.self.back refers back to itself (a cycle)." }));
  });

  test("fields that are undefined are left out, as JSON does; functions, symbols and BigInts are refused", () => {
    expect(toStoredJson({ a: undefined, b: 1 }, "X")).toBe('{"b":1}');
    expect(toStoredJson(undefined, "X")).toBeNull();
    expect(() => toStoredJson({ f: () => 1 }, "X")).toThrow("X cannot be stored: the value.f is a function.");
    expect(() => toStoredJson([Symbol("s")], "X")).toThrow("the value[0] is a symbol.");
    expect(() => toStoredJson({ n: 10n }, "X")).toThrow("the value.n is a BigInt.");
  });
});
