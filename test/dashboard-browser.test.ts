// The dashboard in a real browser (issue 16): Debian's Chromium driven by playwright-core
// against a real `mend dev run` on a temporary copy of an app. One browser for the file;
// a page per test. Each page is saved as a screenshot in the folder printed at the start,
// and a page that logs an error to its console fails its test.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import { copyFixture, serve } from "./helpers/cli.js";
import { DevRun } from "./helpers/dev.js";
import { tempDir } from "./helpers/temp.js";

const root = fileURLToPath(new URL("..", import.meta.url));
/** A name the browser resolves to 127.0.0.1, as a page of a foreign domain that rebinds its DNS would. */
const REBOUND = "rebind.test";

let context: BrowserContext;
let profile: string;
const shots = mkdtempSync(join(tmpdir(), "mend-dashboard-screenshots-"));
const pages: { page: Page; errors: string[] }[] = [];

function chromiumPath(): string {
  try {
    return execFileSync("which", ["chromium"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("Chromium is not installed: apt-get install -y chromium (.ci/run installs it).");
  }
}

beforeAll(async () => {
  console.log(`dashboard screenshots: ${shots}`);
  profile = mkdtempSync(join(tmpdir(), "mend-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
      `--host-resolver-rules=MAP ${REBOUND} 127.0.0.1`,
    ],
    viewport: { width: 1280, height: 800 },
  });
}, 60_000);

afterAll(async () => {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
});

afterEach(async () => {
  for (const { page } of pages.splice(0)) await page.close().catch(() => {});
});

/** A new page whose console errors and uncaught errors are collected. */
async function openPage(): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(e.message));
  const entry = { page, errors };
  pages.push(entry);
  return entry;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function spawn(url: string, stateType: string, stateId: string, method: string, request: unknown = {}, when?: unknown): Promise<string> {
  const response = await fetch(`${url}/v1/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ stateType, stateId, method, request, ...(when ? { when } : {}) }),
  });
  const body = (await response.json()) as { taskId: { taskUuid: string } };
  return body.taskId.taskUuid;
}

async function call(url: string, stateType: string, stateId: string, method: string, request: unknown = {}): Promise<unknown> {
  const response = await fetch(`${url}/v1/call`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ stateType, stateId, method, request }) });
  return response.json();
}

async function devRun(dir: string): Promise<{ dev: DevRun; url: string }> {
  const dev = new DevRun(dir, ["--name", "dash"]);
  const url = await dev.url();
  await dev.until(/v1 ready/);
  return { dev, url };
}

test("the failing demo task shows failing, its stack opens the .ts line, a save turns it completed without a reload; the dev loop shows versions, build errors and restarts", async () => {
  const dir = realpathSync(copyFixture("bank"));
  const { dev, url } = await devRun(dir);
  expect(dev.output).toContain(`mend: serving dash at ${url}\nmend: dashboard at ${url}/__/\n`);
  const uuid = await spawn(url, "Account", "carol", "statement");
  await dev.until(/failed on v1/);

  const { page, errors } = await openPage();
  await page.goto(`${url}/__/`);
  await page.waitForSelector(`tr[data-uuid="${uuid}"] .status.failing`);
  const ready = await page.evaluate(() => performance.getEntriesByName("mend:ready")[0]?.startTime);
  console.log(`dashboard: tasks page usable ${Math.round(ready!)} ms after navigation (first load in a fresh browser)`);
  expect(await page.textContent(`tr[data-uuid="${uuid}"]`)).toContain("Error: Unknown currency 'usd'");
  await shot(page, "1-tasks-failing");
  // Filters: by status (with its count), and by text.
  await call(url, "Account", "zoe", "deposit", { amount: 1 });
  await spawn(url, "Account", "zoe", "welcomeEmail");
  await page.waitForSelector('button.chip[data-status="COMPLETED"] b:text("1")');
  expect(await page.textContent('button.chip[data-status="SCHEDULED_RETRY"] b')).toBe("1");
  await page.click('button.chip[data-status="SCHEDULED_RETRY"]');
  await page.waitForFunction(() => document.querySelectorAll("table.tasks tbody tr").length === 1);
  expect(await page.getAttribute("table.tasks tbody tr", "data-uuid")).toBe(uuid);
  await page.click('button.chip:text("all")');
  await page.fill('input[type="search"]', "zoe");
  await page.waitForFunction(() => [...document.querySelectorAll("table.tasks tbody tr")].every((r) => r.textContent!.includes("zoe")));
  await page.fill('input[type="search"]', "");

  await page.click(`tr[data-uuid="${uuid}"] a[href^="#/task/"]`);
  await page.waitForSelector(`section.task[data-status="SCHEDULED_RETRY"] .attempt .frame`);
  const frames = await page.$$eval("a.frame", (links) => links.map((a) => a.getAttribute("href")));
  expect(frames[0]).toBe(`vscode://file${dir}/src/format.ts:5:22`);
  expect(frames).toContain(`vscode://file${dir}/src/account.ts:30:32`);
  await shot(page, "2-task-failing");

  // The page stays the same document: a reload would lose this.
  await page.evaluate(() => ((window as unknown as { kept: boolean }).kept = true));
  const format = join(dir, "src/format.ts");
  const source = readFileSync(format, "utf8");
  writeFileSync(format, source.replace("SYMBOLS[currency]", "SYMBOLS[currency.toUpperCase()]"));
  await page.waitForSelector(`section.task[data-status="COMPLETED"]`);
  expect(await page.evaluate(() => (window as unknown as { kept?: boolean }).kept)).toBe(true);
  expect(await page.textContent("section.task")).toContain('"text": "Monthly statement for carol. Balance: $0.00"');
  await shot(page, "3-task-completed");

  // A build that fails: the dev loop page shows esbuild's message with its code frame.
  writeFileSync(format, `${source}\nexport const broken = ;\n`);
  await dev.until(/Build failed/);
  await page.click('nav a[href="#/dev"]');
  await page.waitForSelector(".log-build-failed");
  const failure = await page.textContent(".log-build-failed pre");
  expect(failure).toMatch(/src\/format\.ts:\d+:\d+/);
  expect(failure).toContain("export const broken = ;");
  expect(await page.textContent('tr[data-version="v2"]')).toContain("src/format.ts");
  expect(await page.evaluate(() => (window as unknown as { kept?: boolean }).kept)).toBe(true);
  await shot(page, "4-dev-loop");
  expect(errors).toEqual([]);
  await page.close();

  // A runtime that dies is restarted by the watcher, which tells the new one why.
  writeFileSync(format, source.replace("SYMBOLS[currency]", "SYMBOLS[currency.toUpperCase()]"));
  await dev.until(/v3 ready/);
  const { pid } = (await (await fetch(`${url}/health`)).json()) as { pid: number };
  process.kill(pid, "SIGKILL");
  await dev.until(/the runtime was killed by SIGKILL; restarting it on v3[\s\S]*v3 ready/);
  const { log } = (await (await fetch(`${url}/v1/versions`)).json()) as { log: { kind: string; reason?: string }[] };
  expect(log.find((e) => e.kind === "restarted")?.reason).toBe("The runtime was killed by SIGKILL; restarted on v3.");
});

test("retry and cancel from the page, each confirmed by the server's message", async () => {
  const { url } = await devRun(copyFixture("bank"));
  const later = await spawn(url, "Account", "bob", "deposit", { amount: 3 }, { hours: 1 });
  const { page, errors } = await openPage();
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: url });
  await page.goto(`${url}/__/#/task/${later}`);
  await page.waitForSelector('section.task[data-status="SCHEDULED"]');
  // The copy buttons: the id, the CLI command, a curl that spawns the same request.
  const copied = async (label: string) => {
    await page.click(`button:text("${label}")`);
    await page.waitForSelector('button:text("Copied")');
    return page.evaluate(() => navigator.clipboard.readText());
  };
  expect(await copied("Copy id")).toBe(later);
  expect(await copied("Copy mend command")).toBe(`mend task show --application-url ${url} ${later}`);
  expect(await copied("Copy curl")).toBe(
    `curl -X POST ${url}/v1/tasks -H 'content-type: application/json' -d '{"stateType":"Account","stateId":"bob","method":"deposit","request":{"amount":3}}'`,
  );
  await page.click("text=Retry now");
  await page.waitForSelector('section.task[data-status="COMPLETED"]');
  expect(await page.textContent(".notice")).toBe("Task will run now.");
  await shot(page, "5-retried");

  const doomed = await spawn(url, "Account", "bob", "deposit", { amount: 4 }, { hours: 1 });
  await page.goto(`${url}/__/#/task/${doomed}`);
  await page.waitForSelector('section.task[data-status="SCHEDULED"]');
  await page.click("button.danger:text('Cancel')");
  await page.waitForSelector("dialog.confirm[open]");
  await shot(page, "6-cancel-confirm");
  await page.click("dialog.confirm button:text('Cancel the task')");
  await page.waitForSelector('section.task[data-status="CANCELLED"]');
  expect(await page.textContent(".notice")).toBe("Task cancelled.");
  expect(await page.isDisabled("button.danger:text('Cancel')")).toBe(true);
  expect((await call(url, "Account", "bob", "balance")) as object).toEqual({ outcome: { status: "COMPLETED", response: { balance: 3 } } });
  expect(errors).toEqual([]);
});

test("rerun from a step runs only the steps from it on again, as the app counts them; an atMostOnce step says why it cannot", async () => {
  const dir = join(tempDir(), "steps");
  cpSync(join(root, "test/apps/steps"), dir, { recursive: true });
  const { dev, url } = await devRun(dir);
  const uuid = await spawn(url, "Pipeline", "p", "run");
  await dev.until(/failed on v1 \(attempt 1\)/);
  const { page, errors } = await openPage();
  await page.goto(`${url}/__/#/task/${uuid}`);
  await page.waitForSelector('.step[data-alias="third"]');
  // atMostOnce has run: its button is off, and the page says why.
  expect(await page.isDisabled('.step[data-alias="charge"] button')).toBe(true);
  expect(await page.textContent('.step[data-alias="charge"] .why')).toMatch(/atMostOnce and has run: running it again could repeat its effect/);
  await shot(page, "7-steps");

  await page.click('.step[data-alias="second"] button:text("Rerun from here")');
  await page.waitForSelector("dialog.confirm[open]");
  expect(await page.$$eval("ul.forget code", (c) => c.map((e) => e.textContent))).toEqual(["second", "third/Pipeline('p').bump#1", "third"]);
  await page.click("dialog.confirm button:text('Forget and rerun')");
  await page.waitForSelector('.attempt[data-attempt="2"].o-failed');
  expect(await page.textContent(".history")).toMatch(/rerun from step “second” by the dev page — forgot 3 steps: second, third\/Pipeline\('p'\)\.bump#1, third/);
  await shot(page, "8-rerun");

  await page.click(`a[href="#/state/Pipeline/p"]`);
  await page.waitForSelector(".state pre");
  expect(JSON.parse((await page.textContent(".state pre"))!)).toEqual({ runs: { charge: 1, first: 1, second: 2, third: 2 } });
  expect(errors).toEqual([]);
});

test("the state of an instance updates live, without a reload", async () => {
  const { url } = await devRun(copyFixture("bank"));
  await call(url, "Account", "alice", "deposit", { amount: 5 });
  const { page, errors } = await openPage();
  await page.goto(`${url}/__/#/state`);
  await page.waitForSelector('tr[data-type="Account"]');
  await shot(page, "9-state-types");
  await page.click('a[href="#/state/Account"]');
  await page.click('tr[data-id="alice"] a');
  await page.waitForSelector(".state pre");
  expect(JSON.parse((await page.textContent(".state pre"))!)).toMatchObject({ balance: 5 });
  await page.evaluate(() => ((window as unknown as { kept: boolean }).kept = true));
  const sent = Date.now();
  await call(url, "Account", "alice", "deposit", { amount: 7 });
  await page.waitForFunction(() => document.querySelector(".state pre")?.textContent?.includes('"balance": 12'));
  console.log(`dashboard: a state written showed on the page ${Date.now() - sent} ms after the call was sent`);
  expect(await page.evaluate(() => (window as unknown as { kept?: boolean }).kept)).toBe(true);
  await shot(page, "10-state-live");
  expect(errors).toEqual([]);
});

test("a page served under a foreign Host name, and an action without the page's token, are refused", async () => {
  const { url } = await devRun(copyFixture("bank"));
  const port = new URL(url).port;
  const later = await spawn(url, "Account", "dan", "deposit", { amount: 1 }, { hours: 1 });

  // DNS rebinding: a foreign name that resolves to the server gets nothing.
  const { page: foreign } = await openPage();
  const refused = await foreign.goto(`http://${REBOUND}:${port}/__/`);
  expect(refused!.status()).toBe(403);
  expect(await foreign.textContent("body")).toContain("FORBIDDEN_HOST");

  // The page's own origin, but a request without the token the page would send.
  const { page } = await openPage();
  await page.goto(`${url}/__/`);
  await page.waitForSelector("html[data-ready]");
  const answer = await page.evaluate(async (id) => {
    const response = await fetch(`/v1/tasks/${id}/cancel`, { method: "POST" });
    return { status: response.status, body: (await response.json()) as { error: { code: string } } };
  }, later);
  expect(answer.status).toBe(403);
  expect(answer.body.error.code).toBe("MISSING_TOKEN");
  const task = (await (await fetch(`${url}/v1/tasks/${later}`)).json()) as { task: { status: string } };
  expect(task.task.status).toBe("SCHEDULED");
});

test("beyond loopback the page asks for the admin secret, keeps it for the tab only, and shows nothing without it", async () => {
  const secret = "browser-secret-2468";
  const { url } = await serve(copyFixture("bank"), ["--host", "0.0.0.0"], false, { MEND_ADMIN_SECRET: secret });
  const local = `http://127.0.0.1:${new URL(url).port}`;
  const { page, errors } = await openPage();
  await page.goto(`${local}/__/`);
  await page.waitForSelector("form.secret");
  expect(await page.$("table.tasks")).toBeNull();
  await page.fill('form.secret input[type="password"]', "not-the-secret");
  await page.click('form.secret button[type="submit"]');
  await page.waitForSelector("form.secret");
  await shot(page, "11-secret");
  await page.fill('form.secret input[type="password"]', secret);
  await page.click('form.secret button[type="submit"]');
  await page.waitForSelector("html[data-ready]");
  await page.waitForSelector(".dot.live");
  expect(await page.$("form.secret")).toBeNull();
  expect(await page.evaluate(() => [sessionStorage.getItem("mend-admin-secret"), localStorage.length, document.cookie])).toEqual([secret, 0, ""]);
  // The refused requests before the secret was given are the only errors the console saw.
  expect(errors.filter((e) => !/status of 401/.test(e))).toEqual([]);
});
