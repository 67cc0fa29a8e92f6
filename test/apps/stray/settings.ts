export const FIXED = false;
