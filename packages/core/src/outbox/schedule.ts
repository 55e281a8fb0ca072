/** The default long retry schedule (ms after the previous attempt): then hourly. */
export const DEFAULT_SCHEDULE_MS = Object.freeze([0, 1_000, 5_000, 30_000, 120_000, 300_000, 900_000, 1_800_000, 3_600_000]);

/** Delay before attempt number `attempt` (1-based: the first retry is attempt 2), with ±`jitter` spread. */
export function retryDelay(schedule: readonly number[], attempt: number, jitter: number, random = Math.random): number {
  const base = schedule[Math.min(attempt - 1, schedule.length - 1)]!;
  return Math.max(0, Math.round(base * (1 - jitter + 2 * jitter * random())));
}

/** Parses `Retry-After` (seconds or an HTTP date) into ms from `nowMs`; undefined when absent or malformed. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
