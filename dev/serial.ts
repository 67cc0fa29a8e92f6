/**
 * Runs `task` for a burst of triggers: never two at once; a trigger during a run queues
 * exactly one more run, which sees every reason collected meanwhile.
 */
export function serial<R>(task: (reasons: R[]) => Promise<void>, delayMs: number): (reason: R) => void {
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let reasons: R[] = [];

  const run = async () => {
    timer = undefined;
    if (running) return;
    running = true;
    try {
      while (reasons.length > 0) {
        const batch = reasons;
        reasons = [];
        await task(batch);
      }
    } finally {
      running = false;
    }
  };

  return (reason: R) => {
    reasons.push(reason);
    if (running) return;
    clearTimeout(timer);
    timer = setTimeout(run, delayMs);
  };
}
