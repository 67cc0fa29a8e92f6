// Loaded with --import into `mend dev run` (and its runtime child) by test/stuck.test.ts:
// SIGUSR2 makes the watcher's wall clock jump by MEND_TEST_CLOCK_STEP_MS (a laptop waking
// from sleep, an NTP correction); the runtime child prints each pong it sends, so the test
// sees heartbeats go on.
const isRuntime = process.argv.some((a) => a.endsWith("dev-runtime.js"));
if (!isRuntime) {
  const step = Number(process.env.MEND_TEST_CLOCK_STEP_MS);
  const real = Date.now.bind(Date);
  let offset = 0;
  Date.now = () => real() + offset;
  process.on("SIGUSR2", () => {
    offset += step;
    console.log(`clock stepped ${step > 0 ? "+" : ""}${step / 1000} s`);
  });
} else if (process.send) {
  const send = process.send.bind(process);
  process.send = (message, ...rest) => {
    if (message?.type === "pong") console.log(`pong ${message.n}`);
    return send(message, ...rest);
  };
}
