/**
 * Why session runs fail, as a closed set (metric labels, dashboards): the supervisor's own reasons and the crash
 * reasons engines report.
 * - `start-deadline`: no WORKING or SCAN_QR_CODE within `startTimeoutMs`
 * - `start-failed`: the engine's `start()` rejected (a login restore that failed included)
 * - `engine-factory`: the engine could not be built
 * - `metadata`: the session's record was unreadable at launch
 * - `zombie`: the health probe answered false or timed out
 * - `unacknowledged-sends`: sends went unacknowledged while the probe still answered (traffic says it is dead)
 * - `page-crashed`: the page's renderer crashed or its main frame detached
 * - `browser-closed`: the browser disconnected, its process exited, or the page closed
 * - `crashed`: any other crash an engine reported
 */
export const FAILURE_CLASSES = [
  'start-deadline',
  'start-failed',
  'engine-factory',
  'metadata',
  'zombie',
  'unacknowledged-sends',
  'page-crashed',
  'browser-closed',
  'crashed',
] as const;

/** One of {@link FAILURE_CLASSES}. */
export type FailureClass = (typeof FAILURE_CLASSES)[number];

const PREFIXES: ReadonlyArray<readonly [string, FailureClass]> = [
  ['start deadline passed', 'start-deadline'],
  ['start failed', 'start-failed'],
  ['engine factory failed', 'engine-factory'],
  ['metadata unreadable', 'metadata'],
  ['zombie: sends', 'unacknowledged-sends'],
  ['zombie', 'zombie'],
  ['page crashed', 'page-crashed'],
  ['frame detached', 'page-crashed'],
  ['page closed', 'browser-closed'],
  ['browser disconnected', 'browser-closed'],
  ['browser process exited', 'browser-closed'],
];

/** The class of a failure reason. */
export function failureClass(reason: string): FailureClass {
  return PREFIXES.find(([prefix]) => reason.startsWith(prefix))?.[1] ?? 'crashed';
}

/** Longest failure kind the start breaker compares. */
const MAX_KIND = 120;

/**
 * The kind of a start failure, as the start breaker compares them: its reason with runs of digits masked and
 * whitespace collapsed, cut to 120 characters, so one cause seen by many sessions (a port, a pid, a byte count in the
 * message) is one kind.
 */
export function failureKind(reason: string): string {
  return reason.replace(/\d+/g, '#').replace(/\s+/g, ' ').trim().slice(0, MAX_KIND);
}
