/** Compares two fencing epochs (decimal strings): negative when `a` is older, 0 when equal, positive when newer. */
export function compareEpochs(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
