/** Header carrying the epoch the caller expects the owner to hold (sent by @wafleet/client). */
export const EPOCH_HEADER = 'x-wafleet-epoch';
/** Header on every guarded response: the epoch under which this instance served it. */
export const SERVED_EPOCH_HEADER = 'x-wafleet-served-epoch';
/** The IETF httpapi Idempotency-Key header. */
export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** Set on a response replayed from an idempotency record instead of executed again. */
export const REPLAYED_HEADER = 'idempotent-replayed';
