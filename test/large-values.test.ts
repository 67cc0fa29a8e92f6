// Large values (issue 13, item 8): lists carry only a size and a preview of each value,
// `show` cuts a large value and says how large it is (whole on request), and a value over
// the limit (RuntimeOptions.maxValueBytes, 16 MiB by default) is refused with a clear error.
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { ExternalContext, MendError } from "mend";
import app, { Blob } from "./apps/values.js";
import { copyFixture, mend, serve } from "./helpers/cli.js";
import { start } from "./helpers/runtimes.js";

const MB = 1_000_000;

describe("the per-value limit", () => {
  test("a response, a request, a state or a declared value over maxValueBytes fails its call with its size", async () => {
    const rt = await start(app, { maxValueBytes: 1000 });
    const ctx = rt.context();
    expect(await Blob.ref("a").make(ctx, { bytes: 900 })).toEqual({ data: "x".repeat(900) });
    const big = await Blob.ref("a").make(ctx, { bytes: 2000 }).catch((e: unknown) => e);
    expect(big).toBeInstanceOf(MendError);
    expect((big as MendError).code).toBe("TOO_LARGE");
    expect((big as Error).message).toBe("The response of Blob.make is 2.0 kB as JSON, over the limit of 1.0 kB (maxValueBytes).");

    await expect(Blob.ref("a").spawn().echo(ctx, { value: "z".repeat(2000) })).rejects.toThrow(/^The request of Blob\.echo is 2\.0 kB as JSON, over the limit/);
    expect(await rt.listTasks({ limit: 10 })).toEqual([]);

    await expect(Blob.ref("a").grow(ctx, { bytes: 2000 })).rejects.toThrow(/^The state of Blob\('a'\) is 2\.0 kB as JSON, over the limit/);
    expect(await Blob.ref("a").get(ctx)).toEqual({ bytes: 0 });
  });

  test("the default is 16 MiB", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    expect((await Blob.ref("b").make(ctx, { bytes: 16 * MB })).data).toHaveLength(16 * MB);
    await expect(Blob.ref("b").make(ctx, { bytes: 17 * MB })).rejects.toThrow("The response of Blob.make is 17.0 MB as JSON, over the limit of 16.8 MB (maxValueBytes).");
  });

  test("NaN and Infinity in z.any() data are refused like other values JSON cannot hold, not stored as null", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    await expect(Blob.ref("c").echo(ctx, { value: { n: Number.NaN } })).rejects.toThrow("The response of Blob.echo cannot be stored: the value.value.n is NaN, which JSON cannot hold.");
    await expect(Blob.ref("c").spawn().echo(ctx, { value: [1, Infinity] })).rejects.toThrow("the value.value[1] is Infinity, which JSON cannot hold.");
    await expect(Blob.ref("c").echo(ctx, { value: new Date(Number.NaN) })).rejects.toThrow("is an invalid Date");
    expect(await rt.listTasks({ limit: 10 })).toEqual([]);
  });

  test("maxValueBytes must be a whole number of bytes", async () => {
    await expect(start(app, { maxValueBytes: 0 })).rejects.toThrow("maxValueBytes must be an integer >= 1.");
  });
});

describe("lists and show", () => {
  test("runtime.listTasks gives each value's size and first characters, never the value", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    const { task } = await Blob.ref("d").spawn().make(ctx, { bytes: 2 * MB });
    await task;
    const { task: small } = await Blob.ref("d").spawn().make(ctx, { bytes: 100 });
    await small;
    const [smallListed, listed] = await rt.listTasks({ limit: 10 });
    expect(smallListed).toMatchObject({ request: { bytes: 13, preview: '{"bytes":100}' }, response: { bytes: 111, preview: `{"data":"${"x".repeat(71)}` } });
    // A value over 64 KiB is measured without being read, and has no preview (taking its start would read it all).
    expect(listed).toMatchObject({ request: { bytes: 17, preview: '{"bytes":2000000}' }, response: { bytes: 2 * MB + 11, preview: "" } });
    expect(JSON.stringify(listed).length).toBeLessThan(1000);
    // getTask has the values themselves.
    expect((await rt.getTask(task.taskId.taskUuid)).task.response).toEqual({ data: "x".repeat(2 * MB) });
  });

  test("over HTTP and in the CLI: the list stays small, show cuts with the size, --full gives it whole", async () => {
    const application = fileURLToPath(new URL("./apps/values.ts", import.meta.url));
    const { url } = await serve(copyFixture("bank"), ["--application", application]);
    const ctx = new ExternalContext({ url });
    const tasks = [];
    for (let i = 0; i < 20; i++) tasks.push((await Blob.ref(`big-${i}`).spawn().make(ctx, { bytes: 2 * MB })).task);
    await Promise.all(tasks);

    const response = await fetch(`${url}/v1/tasks?limit=100`);
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(text.length).toBeLessThan(40_000);
    const list = JSON.parse(text) as { tasks: { response: { bytes: number } }[] };
    expect(list.tasks).toHaveLength(20);
    expect(list.tasks.every((t) => t.response.bytes === 2 * MB + 11)).toBe(true);

    const flags = ["--application-url", url];
    const listed = await mend(["task", "list", ...flags]);
    expect(listed.exitCode).toBe(0);
    expect(listed.stdout.split("\n")).toHaveLength(21);

    const uuid = tasks[0]!.taskId.taskUuid;
    const show = await mend(["task", "show", ...flags, uuid]);
    expect(show.exitCode).toBe(0);
    expect(show.stdout).toMatch(/^Response  \{"data":"x{100,200}… \(2\.0 MB in all; --full prints it\)$/m);
    expect(show.stdout.length).toBeLessThan(2000);
    const json = JSON.parse((await mend(["task", "show", ...flags, "--json", uuid])).stdout);
    expect(json.task.response).toBeUndefined();
    expect(json.cut.response.bytes).toBe(2 * MB + 11);
    const full = JSON.parse((await mend(["task", "show", ...flags, "--json", "--full", uuid])).stdout);
    expect(full.task.response.data).toHaveLength(2 * MB);
    expect(full.cut).toBeUndefined();
  });
});
