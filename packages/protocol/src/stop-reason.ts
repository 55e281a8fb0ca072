/**
 * Why a session waits for a human instead of running: the kinds of the closed vocabulary. The recorded reason is
 * the kind, optionally followed by `: ` and a short detail (e.g. `restarts exhausted: start deadline passed`).
 */
export const STOP_REASON_KINDS = ['stopped by request', 'logged out', 'restarts exhausted'] as const;
/** A kind of {@link STOP_REASON_KINDS}. */
export type StopReasonKind = (typeof STOP_REASON_KINDS)[number];

/** Longest detail kept after the kind. */
const MAX_DETAIL = 120;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/g;
/** Runs of 6+ digits (with spaces, dots or dashes between): phone numbers, also inside session ids. */
const NUMBER = /\+?\d(?:[\s.-]?\d){5,}/g;

/**
 * Builds the reason recorded in the registry: a kind, plus a detail that is cut to 120 characters, has no
 * control characters, and has long digit runs (phone numbers) replaced by `#`.
 * @example
 * stopReason('restarts exhausted', 'start failed: net::ERR_NAME_NOT_RESOLVED') // 'restarts exhausted: start failed: net::…'
 */
export function stopReason(kind: StopReasonKind, detail?: string): string {
  if (!detail) return kind;
  const clean = detail.replace(CONTROL, ' ').replace(NUMBER, '#').trim();
  const cut = [...clean].slice(0, MAX_DETAIL).join('');
  return cut ? `${kind}: ${cut}` : kind;
}
