// Pure decisions about a workflow's recorded steps (its memo): where each step sits (which
// loop iteration, which helper it ran inside, on which attempt) and what "rerun from a step"
// forgets, or why it refuses.

/** A recorded step, in the order its task first recorded the steps. */
export interface StepRecord {
  alias: string;
  kind: string;
  status: string;
  /** For a loop: the iteration it resumes at (iterations done). */
  iteration?: number;
}

/** Where a step sits: in an iteration of a loop, inside a helper's `fn`. */
export interface StepPlace {
  /** The loop and iteration whose body recorded it. */
  loop?: { alias: string; iteration: number };
  /** The helper (atLeastOnce, atMostOnce) whose `fn` recorded it. */
  within?: string;
}

/** Places each step, given every step of the task (loops are known by their own records). */
export function placeSteps(steps: readonly StepRecord[]): StepPlace[] {
  const loops = steps.filter((s) => s.kind === "loop").map((s) => s.alias);
  const helpers = steps.filter((s) => s.kind === "atLeastOnce" || s.kind === "atMostOnce" || s.kind === "until").map((s) => s.alias);
  return steps.map((s) => {
    const place: StepPlace = {};
    const loop = loopOf(s.alias, loops);
    if (loop) place.loop = loop;
    // The innermost helper whose prefix the alias carries.
    const within = helpers.filter((h) => h !== s.alias && s.alias.startsWith(`${h}/`)).sort((a, b) => b.length - a.length)[0];
    if (within !== undefined) place.within = within;
    return place;
  });
}

function loopOf(alias: string, loops: readonly string[]): { alias: string; iteration: number } | undefined {
  for (const loop of loops) {
    if (!alias.startsWith(`${loop}[`)) continue;
    const match = /^\[(\d+)\]\//.exec(alias.slice(loop.length));
    if (match) return { alias: loop, iteration: Number(match[1]) };
  }
  return undefined;
}

/**
 * On which attempt a step was last recorded: the attempt running at `recordedAt`. Times are
 * milliseconds, so an attempt may end in the millisecond the next one starts: a loop's counter
 * is recorded in the commit that ends its attempt (at that attempt's end time), any other step
 * while its attempt runs, so on such a tie the counter belongs to the attempt that ended and any
 * other step to the one that started.
 */
export function attemptOfStep(
  recordedAt: number,
  attempts: readonly { number: number; startedAt: number; endedAt?: number | null }[],
  kind?: string,
): number | null {
  const running = attempts.filter((a) => a.startedAt <= recordedAt && (a.endedAt == null || recordedAt <= a.endedAt));
  const candidates = running.length > 0 ? running : attempts.filter((a) => a.startedAt <= recordedAt);
  if (candidates.length === 0) return null;
  const numbers = candidates.map((a) => a.number);
  return kind === "loop" && running.length > 0 ? Math.min(...numbers) : Math.max(...numbers);
}

export interface RerunPlan {
  /** The aliases to forget, in recording order. */
  forget: string[];
  /** A loop whose counter goes back, so that the iteration of the chosen step runs again. */
  loop?: { alias: string; iteration: number };
  /** Forgotten spawns: their tasks go on, and the next attempt spawns new ones. */
  spawns: string[];
}

export interface RerunRefusal {
  code: "UNKNOWN_STEP" | "AT_MOST_ONCE";
  message: string;
}

/**
 * What rerunning from `fromStep` forgets: that step, every step recorded after it, and
 * every step recorded inside it (a helper's `fn` records its steps before the helper's own
 * record; a loop's iterations record theirs under `alias[n]/`). A step inside an earlier
 * iteration of a loop sets the loop back to that iteration. Refused for an `atMostOnce`
 * step that started (its effect may have happened: running it again is what atMostOnce
 * promises never to do), for a step inside such a step (it would never run again), and for
 * an alias the task has not recorded.
 */
export function planRerun(steps: readonly StepRecord[], fromStep: string): RerunPlan | RerunRefusal {
  const index = steps.findIndex((s) => s.alias === fromStep);
  if (index < 0) {
    const known = steps.slice(0, 10).map((s) => `"${s.alias}"`);
    return {
      code: "UNKNOWN_STEP",
      message:
        steps.length === 0
          ? `The task has no recorded steps; nothing to rerun from "${fromStep}".`
          : `The task has no step "${fromStep}"; its steps are ${known.join(", ")}${steps.length > 10 ? ", …" : ""}.`,
    };
  }
  // Inside an atMostOnce that has run, a step never runs again (the helper returns its value or throws): refuse.
  const enclosing = steps.find((s) => s.kind === "atMostOnce" && fromStep.startsWith(`${s.alias}/`) && (s.status === "started" || s.status === "completed"));
  if (enclosing)
    return {
      code: "AT_MOST_ONCE",
      message: `This step ran inside the atMostOnce step "${enclosing.alias}", which ${enclosing.status === "completed" ? "has run" : "started on an earlier attempt"} and never runs again: its steps cannot be rerun.`,
    };
  const nested = (alias: string) => alias.startsWith(`${fromStep}/`) || alias.startsWith(`${fromStep}[`);
  const forgotten = steps.filter((s, i) => i >= index || nested(s.alias));
  const started = forgotten.find((s) => s.kind === "atMostOnce" && (s.status === "started" || s.status === "completed"));
  if (started) {
    const what = started.alias === fromStep ? "This step" : `The step "${started.alias}", recorded ${nested(started.alias) ? "inside it" : "after it"},`;
    return {
      code: "AT_MOST_ONCE",
      message:
        `${what} is atMostOnce and ${started.status === "completed" ? "has run" : "started on an earlier attempt"}: ` +
        "running it again could repeat its effect, which atMostOnce promises never to do. Rerun from a step after it.",
    };
  }
  const plan: RerunPlan = { forget: forgotten.map((s) => s.alias), spawns: forgotten.filter((s) => s.kind === "spawn").map((s) => s.alias) };
  const loop = loopOf(fromStep, steps.filter((s) => s.kind === "loop").map((s) => s.alias));
  if (loop && !plan.forget.includes(loop.alias)) {
    const recorded = steps.find((s) => s.alias === loop.alias)?.iteration ?? 0;
    if (recorded > loop.iteration) plan.loop = loop;
  }
  return plan;
}

export function isRefusal(plan: RerunPlan | RerunRefusal): plan is RerunRefusal {
  return "code" in plan;
}
