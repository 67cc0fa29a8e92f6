// 5. Start-up: `mend dev run` on a copy of fixtures/bank, from spawning the process to
// its `v1 ready` line. Baseline: a bare Node process that serves HTTP and says so.
import { execa } from "execa";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { cleanUp, stopChild, tempDir, track } from "./lib/cleanup.js";
import { DevProcess } from "./lib/dev-process.js";
import { ratioOf, row, type BenchResult } from "./lib/report.js";
import { median, summarise } from "./lib/stats.js";
import type { BenchContext } from "./main.js";

const RUNS = 9;

const BARE_NODE = `require("node:http").createServer((q, s) => s.end("ok")).listen(0, "127.0.0.1", () => console.log("ready"));`;

async function bareNode(): Promise<number> {
  const t0 = performance.now();
  const child = track(execa("node", ["-e", BARE_NODE], { reject: false, stdin: "ignore", buffer: false }));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("ready") && resolve());
      void child.then(() => reject(new Error("node exited before it was ready")));
    });
    return performance.now() - t0;
  } finally {
    await stopChild(child);
  }
}

export async function startup(ctx: BenchContext): Promise<BenchResult> {
  const dir = join(tempDir("startup"), "bank");
  cpSync(join(ctx.root, "fixtures/bank"), dir, { recursive: true });
  try {
    const dev: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const run = new DevProcess(ctx.cli, dir, ["--name", "bench"]);
      try {
        // Versions are numbered per store: the 2nd run on the same store starts at v2.
        const { at } = await run.until(/v\d+ ready in \d+ ms/);
        dev.push(at - run.spawnedAt);
      } finally {
        await run.stop();
      }
      bare.push(await bareNode());
    }
    const value = median(dev);
    const base = median(bare);
    return {
      rows: [row({ benchmark: "startup", figure: "start-up to ready (median)", value, unit: "ms", target: { op: "<=", value: 600 }, baseline: { label: "bare node + http", value: base }, ratio: ratioOf(value, base, "<=") })],
      details: { runs: RUNS, dev: summarise(dev), bareNode: summarise(bare), samples: dev.map(Math.round) },
      notes: [`start-up: mend dev run --name bench on a copy of fixtures/bank, process spawn → "v1 ready", ${RUNS} runs (the store exists from the 2nd run on).`],
    };
  } finally {
    await cleanUp();
  }
}
