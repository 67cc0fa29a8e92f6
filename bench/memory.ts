// 4. Memory across reloads: RSS of the runtime child after reload 10 and after reload 300.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanUp, tempDir } from "./lib/cleanup.js";
import { DevProcess } from "./lib/dev-process.js";
import { generateApp, MODULES, moduleFile } from "./lib/generate-app.js";
import { health } from "./lib/http.js";
import { row, type BenchResult } from "./lib/report.js";
import type { BenchContext } from "./main.js";

const RELOADS = 300;
const FIRST = 10;
const MB = 2 ** 20;

export async function memory(ctx: BenchContext): Promise<BenchResult> {
  const app = generateApp(join(tempDir("memory"), "app"));
  const dev = new DevProcess(ctx.cli, app.dir, ["--name", "bench", "--effect-validation=disabled"]);
  try {
    const url = await dev.url();
    await dev.until(/v1 ready in \d+ ms/);
    const samples: { reload: number; rss: number }[] = [];
    let rssAt10 = 0;
    let version = 1;
    for (let reload = 1; reload <= RELOADS; reload++) {
      const mark = dev.mark();
      writeFileSync(app.leafFile, moduleFile(MODULES - 1, reload));
      // Each save waits for a version newer than the last. A save may make two builds (its
      // change event and the watcher's recheck of mtimes); the first is then superseded and
      // never reported, so the numbers may skip.
      for (let from = mark; ; ) {
        const { match, end } = await dev.until(/v(\d+) ready in/, from);
        from = end;
        if (Number(match[1]) > version) {
          version = Number(match[1]);
          break;
        }
      }
      if (reload === FIRST || reload % 50 === 0) {
        const h = await health(url);
        if (h.version !== `v${version}`) throw new Error(`after reload ${reload} the runtime runs ${h.version}, not v${version}`);
        samples.push({ reload, rss: h.rss });
        if (reload === FIRST) rssAt10 = h.rss;
      }
    }
    const rssAt300 = samples.at(-1)!.rss;
    const growth = (rssAt300 - rssAt10) / MB;
    return {
      rows: [row({ benchmark: "memory", figure: `RSS growth, reload ${FIRST} → ${RELOADS}`, value: growth, unit: "MB", target: { op: "<=", value: 30 }, baseline: { label: `RSS at reload ${FIRST}`, value: rssAt10 / MB } })],
      details: { reloads: RELOADS, samples: samples.map((s) => ({ reload: s.reload, rssMb: Math.round((s.rss / MB) * 10) / 10 })) },
      notes: [`memory: ${RELOADS} reloads of the ${app.lines}-line app under mend dev run; RSS ${(rssAt10 / MB).toFixed(1)} MB after reload ${FIRST}, ${(rssAt300 / MB).toFixed(1)} MB after reload ${RELOADS}.`],
    };
  } finally {
    await dev.stop();
    await cleanUp();
  }
}
