// Opening a store file in-process (openStore): what a new store gets, how a held store names
// its holder without a secret, and the clear error each kind of bad file or disk gives,
// leaving the file as it was. (The same refusals through Runtime.start are in store.test.ts
// and bad-input-store.test.ts.)
import Database from "better-sqlite3";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { MendError } from "../src/api/errors.js";
import { APPLICATION_ID, MIGRATIONS } from "../src/store/migrations.js";
import { describeCommand, isDiskFull, openStore, releaseHolder, StoreError } from "../src/store/open.js";
import { smallDisk, unmountDisks } from "./helpers/disk.js";
import { tempDir } from "./helpers/temp.js";

const opened: { db: Database.Database; path: string }[] = [];
// Runs before the hooks of helpers/temp.ts (hooks run in reverse order): close, unmount, then the folders go.
afterEach(() => {
  for (const { db, path } of opened.splice(0)) {
    db.close();
    releaseHolder(path);
  }
  unmountDisks();
});

function open(path: string, options?: Parameters<typeof openStore>[1]): Database.Database {
  const db = openStore(path, options);
  opened.push({ db, path });
  return db;
}

/** What openStore throws for `path`; fails the test if it opens. */
function refusal(path: string): StoreError {
  let db: Database.Database | undefined;
  try {
    db = openStore(path);
  } catch (e) {
    return e as StoreError;
  }
  db.close();
  releaseHolder(path);
  throw new Error(`${path} was opened`);
}

/** Checks that opening `path` is refused with `message`, as a StoreError, and leaves the file byte for byte as it was. */
function refusesUntouched(path: string, message: string): StoreError {
  const before = readFileSync(path);
  const error = refusal(path);
  expect(error).toBeInstanceOf(StoreError);
  expect(error.message).toBe(message);
  expect(readFileSync(path).equals(before)).toBe(true);
  return error;
}

/** A store made by mend, closed again. */
function madeStore(): string {
  const path = join(tempDir(), "mend.sqlite");
  const db = openStore(path);
  db.close();
  releaseHolder(path);
  return path;
}

/** An SQLite file as another program would leave it. */
function otherDatabase(setup: (db: Database.Database) => void): string {
  const path = join(tempDir(), "other.sqlite");
  const db = new Database(path);
  setup(db);
  db.close();
  return path;
}


describe("describeCommand names a process without the values of its arguments", () => {
  test("the script's file name, its subcommands and its flags' names", () => {
    expect(describeCommand(["/x/dist/cli.js", "serve", "--application", "src/main.ts", "--name", "bank", "--admin-secret", "S3cr3t"])).toBe(
      "cli.js serve --application --name --admin-secret",
    );
    expect(describeCommand(["/x/dist/cli.js", "task", "list", "-n", "5", "--json"])).toBe("cli.js task list -n --json");
    expect(describeCommand(["/x/dist/cli.js", "serve", "--admin-secret=S3cr3t", "-p", "1"])).toBe("cli.js serve --admin-secret -p");
    expect(describeCommand(["/x/cli.js"])).toBe("cli.js");
    expect(describeCommand([])).toBe("node");
  });

  test("a word after a flag is a value: never shown", () => {
    expect(describeCommand(["/x/cli.js", "--name", "bank", "serve"])).toBe("cli.js --name");
    expect(describeCommand(["/x/cli.js", "--verbose", "secret"])).toBe("cli.js --verbose");
  });

  test("what does not look like a subcommand or a flag's name is one …, however many in a row", () => {
    expect(describeCommand(["/x/dev-runtime.js", JSON.stringify({ adminSecret: "S3cr3t" })])).toBe("dev-runtime.js …");
    expect(describeCommand(["/x/cli.js", "src/main.ts", "./run", "Serve", "9lives", "serve"])).toBe("cli.js … serve");
    expect(describeCommand(["/x/cli.js", "a".repeat(32)])).toBe("cli.js …");
    expect(describeCommand(["/x/cli.js", "a".repeat(31)])).toBe(`cli.js ${"a".repeat(31)}`);
    // Values that start with a dash, after a flag that takes them.
    expect(describeCommand(["/x/cli.js", "serve", "--admin-secret", "-S3cr3t-holder-value"])).toBe("cli.js serve --admin-secret …");
    expect(describeCommand(["/x/cli.js", "serve", "--admin-secret", "-p4ss-x", "-9-a", "--", "--x_y"])).toBe("cli.js serve --admin-secret …");
    expect(describeCommand(["/x/cli.js", "serve", "-p", "-1", "--port"])).toBe("cli.js serve -p … --port");
  });
});

describe("a new store", () => {
  test("is created with its folder and mend's schema, and held by this process", () => {
    const path = join(tempDir(), "a", "b", "mend.sqlite");
    const db = open(path);
    expect(db.pragma("application_id", { simple: true })).toBe(APPLICATION_ID);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("synchronous", { simple: true })).toBe(2); // FULL
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    // A second opener is refused at once, not after waiting for the lock.
    expect(db.pragma("busy_timeout", { simple: true })).toBe(0);
  });

  test("an empty file (made by touch) is taken as a new store", () => {
    const path = join(tempDir(), "mend.sqlite");
    writeFileSync(path, "");
    const db = open(path);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
  });

  test("the holder file beside it names this process, readable by its owner only, and goes at release", () => {
    const path = join(tempDir(), "mend.sqlite");
    const before = Date.now();
    const db = openStore(path);
    const holder = JSON.parse(readFileSync(`${path}.holder`, "utf8")) as { pid: number; command: string; since: string };
    expect(holder.pid).toBe(process.pid);
    // The script this process runs, not node itself.
    expect(holder.command).toBe(describeCommand(process.argv.slice(1)));
    expect(holder.command.split(" ")[0]).toBe(basename(process.argv[1]!));
    expect(Date.parse(holder.since)).toBeGreaterThanOrEqual(before - 1000);
    expect(statSync(`${path}.holder`).mode & 0o777).toBe(0o600);
    db.close();
    releaseHolder(path);
    expect(existsSync(`${path}.holder`)).toBe(false);
    expect(existsSync(path)).toBe(true);
    // Releasing a store whose holder file is gone already (never written, removed by hand) is fine.
    expect(() => releaseHolder(path)).not.toThrow();
  });

  test("a holder file left readable by all by a killed holder is replaced by one for the owner only", () => {
    const path = madeStore();
    writeFileSync(`${path}.holder`, JSON.stringify({ pid: 1, command: "cli.js serve --admin-secret S3cr3t", since: "then" }));
    chmodSync(`${path}.holder`, 0o644);
    open(path);
    expect(statSync(`${path}.holder`).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(`${path}.holder`, "utf8"))).toMatchObject({ pid: process.pid });
  });
});

describe("a store held by another opener", () => {
  test("is refused, naming the holder from its holder file", () => {
    const path = join(tempDir(), "mend.sqlite");
    open(path);
    const { since } = JSON.parse(readFileSync(`${path}.holder`, "utf8")) as { since: string };
    const error = refusal(path);
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toBeInstanceOf(MendError);
    expect({ code: error.code, name: error.name }).toEqual({ code: "STORE", name: "StoreError" });
    expect(error.message).toBe(`The store ${path} is in use by process ${process.pid} (${describeCommand(process.argv.slice(1))}), since ${since}. Stop it first.`);
    expect(error.cause).toMatchObject({ code: "SQLITE_BUSY" });
    // The refusal left the holder's file as it was.
    expect(JSON.parse(readFileSync(`${path}.holder`, "utf8"))).toMatchObject({ pid: process.pid, since });
  });

  test("a holder file written by an older mend (a whole command line) is masked when shown", () => {
    const path = join(tempDir(), "mend.sqlite");
    open(path);
    writeFileSync(`${path}.holder`, JSON.stringify({ pid: 4242, command: "/x/cli.js serve --name test --admin-secret S3cr3t", since: "then" }));
    expect(refusal(path).message).toBe(`The store ${path} is in use by process 4242 (cli.js serve --name --admin-secret), since then. Stop it first.`);
  });

  test.each([
    ["no holder file", undefined],
    ["a holder file that is not JSON", "{pid: 4242"],
  ])("with %s, the holder is another process", (_what, text) => {
    const path = join(tempDir(), "mend.sqlite");
    open(path);
    if (text === undefined) rmSync(`${path}.holder`);
    else writeFileSync(`${path}.holder`, text);
    expect(refusal(path).message).toBe(`The store ${path} is in use by another process. Stop it first.`);
  });
});

describe("a file that is not a mend store is refused and left untouched", () => {
  test("an empty SQLite database of another program (its own application id, no tables)", () => {
    const path = otherDatabase((db) => db.pragma("application_id = 7"));
    refusesUntouched(path, `${path} is an SQLite database but not a mend store; it was left untouched.`);
  });

  test("an empty SQLite database of another program that set a schema version of its own", () => {
    const path = otherDatabase((db) => db.pragma("user_version = 1"));
    refusesUntouched(path, `${path} is an SQLite database but not a mend store; it was left untouched.`);
  });

  test("the smallest SQLite database (one 512-byte page) is read as one, not taken for a truncated file", () => {
    const path = otherDatabase((db) => {
      db.pragma("page_size = 512");
      db.pragma("application_id = 7");
    });
    expect(statSync(path).size).toBe(512);
    refusesUntouched(path, `${path} is an SQLite database but not a mend store; it was left untouched.`);
  });
});

describe("a damaged store is refused with what SQLite found, and left untouched", () => {
  test("its pages scribbled over", () => {
    const path = madeStore();
    const bytes = readFileSync(path);
    bytes.fill(0xab, 100, 4096);
    writeFileSync(path, bytes);
    const error = refusal(path);
    expect(error.message).toMatch(new RegExp(`^The store ${path} is damaged \\(.+\\); it was left untouched\\.$`));
    expect(error.cause).toMatchObject({ code: expect.stringMatching(/^SQLITE_(CORRUPT|NOTADB)/) });
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  test("its tables not what its schema version says (a migration's SQL fails on it)", () => {
    const path = madeStore();
    const db = new Database(path);
    db.pragma("user_version = 0");
    db.close();
    const error = refusesUntouched(path, `The store ${path} is damaged (table states already exists); it was left untouched.`);
    expect(error.cause).toMatchObject({ code: "SQLITE_ERROR" });
  });
});

describe("a store that cannot be created, opened or written says why", () => {
  test("its folder cannot be created (its parent is a file)", () => {
    const file = join(tempDir(), "file");
    writeFileSync(file, "");
    const path = join(file, "mend.sqlite");
    const error = refusal(path);
    expect(error).toBeInstanceOf(StoreError);
    expect(error.message).toMatch(new RegExp(`^Cannot create the folder of the store ${path}: EEXIST`));
    expect(error.cause).toMatchObject({ code: "EEXIST" });
  });

  test("its path is a link to a place that does not exist", () => {
    const path = join(tempDir(), "mend.sqlite");
    symlinkSync(join(tempDir(), "gone", "mend.sqlite"), path);
    const error = refusal(path);
    expect(error).toBeInstanceOf(StoreError);
    expect(error.message).toBe(`Cannot open the store ${path}: unable to open database file`);
    expect(error.cause).toMatchObject({ code: "SQLITE_CANTOPEN" });
  });

  test("on a read-only file system", (ctx) => {
    const disk = smallDisk(1024);
    if (!disk) return ctx.skip();
    const path = join(disk, "mend.sqlite");
    const db = openStore(path);
    db.close();
    releaseHolder(path);
    execFileSync("mount", ["-o", "remount,ro", disk]);
    const before = readFileSync(path);
    const error = refusal(path);
    expect(error).toBeInstanceOf(StoreError);
    // SQLite's own words (a failed lock: "disk I/O error", or "attempt to write a readonly database"), not a full disk.
    expect(error.message).toMatch(new RegExp(`^Cannot write the store ${path}: (?!the disk is full)`));
    expect(error.message).toContain((error.cause as Error).message);
    expect(error.cause).toMatchObject({ code: expect.stringMatching(/^SQLITE_(READONLY|IOERR)/) });
    expect(isDiskFull(error)).toBe(false);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  test("on a full disk", (ctx) => {
    const disk = smallDisk(256);
    if (!disk) return ctx.skip();
    try {
      for (let i = 0; ; i++) writeFileSync(join(disk, `filler-${i}`), Buffer.alloc(4096, 1));
    } catch (e) {
      expect((e as { code?: string }).code).toBe("ENOSPC");
    }
    const path = join(disk, "mend.sqlite");
    const error = refusal(path);
    expect(error).toBeInstanceOf(StoreError);
    expect(error.message).toBe(`Cannot write the store ${path}: the disk is full.`);
    expect(error.cause).toMatchObject({ code: "SQLITE_FULL" });
    // Its cause is what tells a server to answer 507 and the CLI to say the disk is full.
    expect(isDiskFull(error)).toBe(true);
  });
});

describe("isDiskFull", () => {
  test("finds a full disk in an error or in the causes under it", () => {
    expect(isDiskFull(Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }))).toBe(true);
    expect(isDiskFull(Object.assign(new Error("no space left on device"), { code: "ENOSPC" }))).toBe(true);
    const full = Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
    expect(isDiskFull(new StoreError("Cannot write.", { cause: new Error("wrapped", { cause: full }) }))).toBe(true);
  });

  test("is false for anything else, including what is not an error and a cause chain that loops", () => {
    expect(isDiskFull(Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR" }))).toBe(false);
    expect(isDiskFull(new Error("x", { cause: new Error("y") }))).toBe(false);
    for (const value of [undefined, null, "SQLITE_FULL", 0, { code: "EACCES" }]) expect(isDiskFull(value)).toBe(false);
    const loop = Object.assign(new Error("a"), { code: "EIO" }) as Error & { cause?: unknown };
    loop.cause = loop;
    expect(isDiskFull(loop)).toBe(false);
  });
});
