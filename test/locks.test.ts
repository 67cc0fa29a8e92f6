// The per-instance lock: writers of one instance one at a time, in the order they asked;
// a wait given up on abort; wait-die between transactions that hold locks.
import { describe, expect, test } from "vitest";
import { KeyedMutex, LockConflict, newOwner } from "../src/runtime/locks.js";

/** Whether `p` has settled once everything already queued has run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe("KeyedMutex", () => {
  test("one holder per key, the next in the order asked; other keys are free; a release counts once", async () => {
    const locks = new KeyedMutex();
    const a = newOwner(false);
    const b = newOwner(false);
    const c = newOwner(false);
    const releaseA = await locks.acquire("k", a);
    expect(a.held).toBe(1);
    const forB = locks.acquire("k", b);
    const forC = locks.acquire("k", c);
    expect(await settled(forB)).toBe(false);
    await locks.acquire("other", newOwner(false)); // another key is not held by a
    releaseA();
    expect(a.held).toBe(0);
    const releaseB = await forB;
    expect(b.held).toBe(1);
    releaseA(); // again: nothing more is released
    expect(await settled(forC)).toBe(false);
    releaseB();
    const releaseC = await forC;
    releaseC();
    // Free again: taken at once.
    const d = newOwner(false);
    (await locks.acquire("k", d))();
    expect(d.held).toBe(0);
  });

  test("a wait given up on abort leaves the queue: the lock goes to the next, and the aborted owner holds nothing", async () => {
    const locks = new KeyedMutex();
    const release = await locks.acquire("k", newOwner(false));
    const gaveUp = newOwner(false);
    const controller = new AbortController();
    const forAborted = locks.acquire("k", gaveUp, controller.signal);
    const next = newOwner(false);
    const forNext = locks.acquire("k", next);
    controller.abort(new Error("cancelled"));
    await expect(forAborted).rejects.toThrow("cancelled");
    release();
    const releaseNext = await forNext;
    expect(next.held).toBe(1);
    expect(gaveUp.held).toBe(0);
    releaseNext();
  });

  test("an aborted signal is refused at once and takes nothing; an abort after the grant changes nothing", async () => {
    const locks = new KeyedMutex();
    const owner = newOwner(false);
    const aborted = AbortSignal.abort(new Error("too late"));
    await expect(locks.acquire("k", owner, aborted)).rejects.toThrow("too late");
    expect(owner.held).toBe(0);
    // The key was never taken: the next asks get it at once.
    const release = await locks.acquire("k", newOwner(false));
    const controller = new AbortController();
    const waiting = newOwner(false);
    const forWaiting = locks.acquire("k", waiting, controller.signal);
    release();
    const releaseWaiting = await forWaiting;
    controller.abort(new Error("after the grant"));
    const third = newOwner(false);
    const forThird = locks.acquire("k", third);
    expect(await settled(forThird)).toBe(false); // still held by `waiting`
    releaseWaiting();
    (await forThird)();
  });

  test("wait-die: a transaction holding a lock never waits behind an older transaction; an older one waits", async () => {
    const locks = new KeyedMutex();
    const older = newOwner(true);
    const younger = newOwner(true);
    const releaseA = await locks.acquire("a", older);
    const releaseB = await locks.acquire("b", younger);
    // The younger holds b and wants a, held by the older: it must let go and run again.
    const conflict = locks.acquire("a", younger);
    await expect(conflict).rejects.toBeInstanceOf(LockConflict);
    await expect(conflict).rejects.toMatchObject({ code: "LOCK_CONFLICT", key: "a" });
    // The older holds a and wants b, held by the younger: it waits.
    const forB = locks.acquire("b", older);
    expect(await settled(forB)).toBe(false);
    releaseB();
    (await forB)();
    releaseA();
  });

  test("wait-die looks at the queue too, and spares owners that hold nothing and writers", async () => {
    const locks = new KeyedMutex();
    const holder = newOwner(false); // a writer holds k
    const releaseK = await locks.acquire("k", holder);
    const older = newOwner(true);
    const younger = newOwner(true);
    const forOlder = locks.acquire("k", older); // the older transaction waits for k, holding nothing
    expect(await settled(forOlder)).toBe(false);
    // The younger, holding another lock, would queue behind the older: it dies.
    const releaseOther = await locks.acquire("other", younger);
    await expect(locks.acquire("k", younger)).rejects.toBeInstanceOf(LockConflict);
    releaseOther();
    // Holding nothing, the younger waits: it cannot be part of a cycle.
    const forYounger = locks.acquire("k", younger);
    expect(await settled(forYounger)).toBe(false);
    // A writer never dies, even while it holds a lock (it never waits while holding one in the runtime).
    const writer = newOwner(false);
    const releaseW = await locks.acquire("w", writer);
    const forWriter = locks.acquire("k", writer);
    expect(await settled(forWriter)).toBe(false);
    releaseK();
    (await forOlder)();
    (await forYounger)();
    releaseW();
    (await forWriter)();
  });

  test("whenFree resolves at once on a free key, else after the holder and those queued before it", async () => {
    const locks = new KeyedMutex();
    expect(await settled(locks.whenFree("k"))).toBe(true);
    const release = await locks.acquire("k", newOwner(false));
    const queued = locks.acquire("k", newOwner(false));
    const free = locks.whenFree("k");
    release();
    expect(await settled(free)).toBe(false); // the queued owner holds it now
    (await queued)();
    await free;
    // And it left the key free.
    expect(await settled(locks.acquire("k", newOwner(false)))).toBe(true);
  });
});
