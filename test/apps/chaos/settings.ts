// Saved by the chaos suite while `mend dev run` runs the app: each save is a reload.
export const FIXED = false;
export const SAVES = 0;
