// Mutation testing (Stryker) in parts. The whole set takes hours on a small machine, and a
// Stryker run keeps nothing when it is stopped before its end; run part by part, each
// part's results are saved as soon as it ends (its report and its incremental file), and a
// part whose code and tests have not changed since is not run again. So an interrupted
// `npm run mutate` resumes where it stopped.
//
//   npm run mutate                  every part, in order, then the table of scores
//   npm run mutate -- engine store  those parts
//   npm run mutate -- --summary     the table from the saved reports only
//   npm run mutate -- --timeouts    test again the mutants that timed out (a busy machine
//                                   makes a run slow enough to time out: a false kill)
//
// Stryker's incremental mode never tests a static mutant (code run as a module loads) again
// once it survived, even after tests were added that kill it: each part's survivors of that
// kind are tested again on every run.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const PARTS = {
  engine: [
    "src/runtime/engine.ts",
    "src/runtime/window.ts",
    "src/runtime/heap.ts",
    "src/runtime/backoff.ts",
    "src/runtime/locks.ts",
    "src/runtime/steps.ts",
    "src/store/commit-queue.ts",
    "src/server/guard.ts",
  ],
  executor: ["src/runtime/executor.ts"],
  runtime: [
    "src/runtime/**/*.ts",
    "!src/runtime/{engine,window,heap,backoff,locks,steps,executor}.ts",
    // Run on PostgreSQL only, which mutants do not run on (vitest.mutate.config.ts).
    "!src/runtime/{claimer,shared-locks}.ts",
  ],
  store: ["src/store/**/*.ts", "!src/store/commit-queue.ts", "!src/store/pg-*.ts", "!src/store/copy.ts", "src/api/errors.ts"],
};

const OUT = "reports/mutation";
const args = process.argv.slice(2);
const summaryOnly = args.includes("--summary");
const retestTimeouts = args.includes("--timeouts");
const named = args.filter((a) => !a.startsWith("--"));
for (const name of named) {
  if (!(name in PARTS)) {
    console.error(`No part named '${name}'. The parts: ${Object.keys(PARTS).join(", ")}.`);
    process.exit(2);
  }
}

mkdirSync(OUT, { recursive: true });
const base = JSON.parse(readFileSync("stryker.config.json", "utf8"));

if (!summaryOnly) {
  for (const name of named.length > 0 ? named : Object.keys(PARTS)) {
    const config = {
      ...base,
      $schema: undefined,
      mutate: PARTS[name],
      incrementalFile: join(OUT, `${name}.incremental.json`),
      jsonReporter: { fileName: join(OUT, `${name}.json`) },
      htmlReporter: { fileName: join(OUT, `${name}.html`) },
    };
    const forgotten = forget(config.incrementalFile, (m) => (m.static && (m.status === "Survived" || m.status === "NoCoverage")) || (retestTimeouts && m.status === "Timeout"));
    if (forgotten > 0) console.log(`${forgotten} mutants of part '${name}' are tested again (static survivors${retestTimeouts ? ", timeouts" : ""}).`);
    const configFile = join(OUT, `${name}.config.json`);
    writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
    console.log(`\n== mutation testing, part '${name}': ${PARTS[name].join(" ")}`);
    // The code it mutates is copied as it starts: that is the commit it measures.
    const started = Date.now();
    const at = commit();
    const run = spawnSync("npx", ["stryker", "run", configFile], { stdio: "inherit" });
    if (run.status !== 0) {
      console.error(`Part '${name}' did not end (exit ${run.status ?? run.signal}); the parts before it are saved.`);
      process.exit(1);
    }
    writeFileSync(join(OUT, `${name}.meta.json`), `${JSON.stringify({ commit: at, endedAt: new Date().toISOString(), seconds: Math.round((Date.now() - started) / 1000) })}\n`);
  }
}
summary();

/** Drops from an incremental file the mutants `again` picks, so that Stryker tests them again; how many. */
function forget(file, again) {
  if (!existsSync(file)) return 0;
  const incremental = JSON.parse(readFileSync(file, "utf8"));
  let dropped = 0;
  for (const f of Object.values(incremental.files)) {
    const kept = f.mutants.filter((m) => !again(m));
    dropped += f.mutants.length - kept.length;
    f.mutants = kept;
  }
  if (dropped > 0) writeFileSync(file, JSON.stringify(incremental));
  return dropped;
}

function commit() {
  const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  const dirty = execFileSync("git", ["status", "--porcelain", "--", "src", "test"], { encoding: "utf8" }).trim() !== "";
  return dirty ? `${head}+changes` : head;
}

/** Per file and in all: killed and timed-out mutants over every mutant that ran or had no test (Stryker's score). */
function summary() {
  const rows = [];
  const total = { killed: 0, timeout: 0, survived: 0, noCoverage: 0 };
  const runs = [];
  for (const name of Object.keys(PARTS)) {
    const report = join(OUT, `${name}.json`);
    if (!existsSync(report)) {
      runs.push(`${name}: not run yet`);
      continue;
    }
    const meta = existsSync(join(OUT, `${name}.meta.json`)) ? JSON.parse(readFileSync(join(OUT, `${name}.meta.json`), "utf8")) : {};
    runs.push(`${name}: ${meta.commit ?? "?"}, ${meta.endedAt ?? "?"}, ${meta.seconds ?? "?"} s`);
    for (const [file, { mutants }] of Object.entries(JSON.parse(readFileSync(report, "utf8")).files)) {
      const c = { killed: 0, timeout: 0, survived: 0, noCoverage: 0 };
      for (const m of mutants) {
        if (m.status === "Killed") c.killed++;
        else if (m.status === "Timeout") c.timeout++;
        else if (m.status === "Survived") c.survived++;
        else if (m.status === "NoCoverage") c.noCoverage++;
      }
      for (const k of Object.keys(total)) total[k] += c[k];
      rows.push({ file, ...c });
    }
  }
  const score = (c) => {
    const detected = c.killed + c.timeout;
    const all = detected + c.survived + c.noCoverage;
    return all === 0 ? "–" : `${((100 * detected) / all).toFixed(1)}%`;
  };
  rows.sort((a, b) => parseFloat(score(b)) - parseFloat(score(a)) || a.file.localeCompare(b.file));
  console.log(`\nParts: ${runs.join("; ")}\n`);
  console.log("| file | score | killed | timed out | survived | no coverage |\n|---|--:|--:|--:|--:|--:|");
  for (const r of [...rows, { file: "all", ...total }])
    console.log(`| ${r.file === "all" ? "all" : `\`${r.file}\``} | ${score(r)} | ${r.killed} | ${r.timeout} | ${r.survived} | ${r.noCoverage} |`);
}
