/**
 * Resolves after `ms` milliseconds.
 *
 * @param ms - delay in milliseconds
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
