// Twelve calls deep: each level's frame must survive in the stored stack.
export function level1(n: number): number { return level2(n + 1); }
export function level2(n: number): number { return level3(n + 1); }
export function level3(n: number): number { return level4(n + 1); }
export function level4(n: number): number { return level5(n + 1); }
export function level5(n: number): number { return level6(n + 1); }
export function level6(n: number): number { return level7(n + 1); }
export function level7(n: number): number { return level8(n + 1); }
export function level8(n: number): number { return level9(n + 1); }
export function level9(n: number): number { return level10(n + 1); }
export function level10(n: number): number { return level11(n + 1); }
export function level11(n: number): number { return level12(n + 1); }
export function level12(n: number): number {
  if (n > 0) throw new Error(`too deep at ${n}`);
  return n;
}
