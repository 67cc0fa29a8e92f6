// A workflow's steps as the page lists them: consecutive steps of one loop iteration together.

export interface Step {
  alias: string;
  kind: string;
  step: string;
  status: string;
  value?: unknown;
  cut?: { bytes: number; preview: string };
  recordedAt: number;
  attempt: number | null;
  loop?: { alias: string; iteration: number };
  within?: string;
}

export interface Group {
  loop?: { alias: string; iteration: number };
  steps: Step[];
}

/** Consecutive steps of one loop iteration, grouped. */
export function groupSteps(steps: readonly Step[]): Group[] {
  const groups: Group[] = [];
  for (const s of steps) {
    const last = groups.at(-1);
    const same = last && last.loop?.alias === s.loop?.alias && last.loop?.iteration === s.loop?.iteration;
    if (same) last.steps.push(s);
    else groups.push({ ...(s.loop ? { loop: s.loop } : {}), steps: [s] });
  }
  return groups;
}

