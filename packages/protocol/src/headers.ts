/** Header carrying the epoch the caller expects the owner to hold (sent by @wafleet/client). */
export const EPOCH_HEADER = 'x-wafleet-epoch';
/** Header on every guarded response: the epoch under which this instance served it. */
export const SERVED_EPOCH_HEADER = 'x-wafleet-served-epoch';
/** The IETF httpapi Idempotency-Key header. */
export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** Set on a response replayed from an idempotency record instead of executed again. */
export const REPLAYED_HEADER = 'idempotent-replayed';
/** Marks a request a non-owner forwarded to the owner: an instance that does not own its session answers 421, never a second hop. */
export const FORWARDED_HEADER = 'x-wafleet-forwarded';
/** On a forwarded response: the instance that forwarded it. */
export const FORWARDED_BY_HEADER = 'x-wafleet-forwarded-by';
