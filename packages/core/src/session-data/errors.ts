import { WafleetError } from '@wafleet/protocol';

/**
 * Bytes read back do not match the committed version (size or SHA-256), or are missing. Nothing was written at the
 * destination.
 */
export class DataCorruptError extends WafleetError {
  constructor(
    readonly sessionId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('WAFLEET_DATA_CORRUPT', message, options);
  }
}

/** The archive exceeds the backend's `maxBytes`. Nothing was committed. */
export class DataTooLargeError extends WafleetError {
  constructor(
    readonly sessionId: string,
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(
      'WAFLEET_DATA_TOO_LARGE',
      `The data of session ${sessionId} has ${size} bytes or more; the backend stores at most maxBytes ${maxBytes}`,
    );
  }
}
