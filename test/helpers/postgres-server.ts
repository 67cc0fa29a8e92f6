// A PostgreSQL server of its own for a test run or a benchmark, from the binaries on the
// machine: initdb into a temporary folder, a free port on 127.0.0.1 only, and pg_ctl to stop
// it. PostgreSQL refuses to run as root: then it runs as the `postgres` user (the Debian
// package creates it), which owns the folder. A watchdog process stops the server if the
// process that started it goes away without stopping it (a test runner killed).
import { execFile, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Where the machine's PostgreSQL binaries are (the newest version), or undefined. */
export function postgresBinaries(): string | undefined {
  if (process.env.MEND_PG_BIN) return existsSync(join(process.env.MEND_PG_BIN, "initdb")) ? process.env.MEND_PG_BIN : undefined;
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin/initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], "bin") : undefined;
}

export interface PostgresServer {
  /** `postgresql://mend@127.0.0.1:PORT/postgres` */
  url: string;
  port: number;
  /** Stops the server (immediately) and removes its folder. */
  stop(): Promise<void>;
}

export interface PostgresOptions {
  /** fsync and synchronous_commit on (a benchmark of durable settings); off by default, for tests. */
  durable?: boolean;
  /** More settings, `-c name=value` each. */
  settings?: Record<string, string | number>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs a PostgreSQL binary, as the `postgres` user when this process is root. */
function asOwner(bin: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  if (userInfo().uid === 0) return run("runuser", ["-u", "postgres", "--", bin, ...args]);
  return run(bin, args);
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinaries();
  if (!bin) throw new Error("No PostgreSQL binaries found (apt-get install -y postgresql, or MEND_PG_BIN)");
  const dir = mkdtempSync(join(tmpdir(), "mend-pg-"));
  if (userInfo().uid === 0) chownSync(dir, Number((await run("id", ["-u", "postgres"])).stdout.trim()), Number((await run("id", ["-g", "postgres"])).stdout.trim()));
  const data = join(dir, "data");
  await asOwner(join(bin, "initdb"), ["-D", data, "-U", "mend", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]);
  const settings: Record<string, string | number> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: dir,
    max_connections: 400,
    fsync: options.durable ? "on" : "off",
    synchronous_commit: options.durable ? "on" : "off",
    full_page_writes: options.durable ? "on" : "off",
    shared_buffers: "128MB",
    ...options.settings,
  };
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const flags = [`-p ${port}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`)].join(" ");
    try {
      await asOwner(join(bin, "pg_ctl"), ["-D", data, "-l", join(dir, "log"), "-w", "-t", "60", "-o", flags, "start"]);
    } catch (e) {
      if (tries < 3 && /could not bind|address already in use/i.test(readLog(dir))) continue;
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`PostgreSQL did not start: ${(e as Error).message}\n${readLog(dir)}`);
    }
    const watchdog = startWatchdog(bin, data, dir);
    let stopped: Promise<void> | undefined;
    return {
      url: `postgresql://mend@127.0.0.1:${port}/postgres`,
      port,
      stop: () =>
        (stopped ??= (async () => {
          await asOwner(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => killPostmaster(data));
          watchdog.kill("SIGKILL");
          rmSync(dir, { recursive: true, force: true });
        })()),
    };
  }
}

function readLog(dir: string): string {
  try {
    return readFileSync(join(dir, "log"), "utf8").slice(-2000);
  } catch {
    return "";
  }
}

function killPostmaster(data: string): void {
  try {
    const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
    if (pid > 0) process.kill(pid, "SIGKILL");
  } catch {
    // Not running.
  }
}

/** A detached process that stops the server once this process is gone. */
function startWatchdog(bin: string, data: string, dir: string) {
  const script = join(dir, "watchdog.cjs");
  writeFileSync(
    script,
    `const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const [parent, bin, data, dir, root] = process.argv.slice(2);
setInterval(() => {
  try { process.kill(Number(parent), 0); return; } catch {}
  try {
    const args = ["-D", data, "-m", "immediate", "-w", "stop"];
    if (root === "1") execFileSync("runuser", ["-u", "postgres", "--", bin + "/pg_ctl", ...args], { stdio: "ignore" });
    else execFileSync(bin + "/pg_ctl", args, { stdio: "ignore" });
  } catch {
    try { process.kill(Number(fs.readFileSync(data + "/postmaster.pid", "utf8").split("\\n")[0]), "SIGKILL"); } catch {}
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}, 500);
`,
  );
  const child = spawn(process.execPath, [script, String(process.pid), bin, data, dir, userInfo().uid === 0 ? "1" : "0"], { detached: true, stdio: "ignore" });
  child.unref();
  return child;
}
