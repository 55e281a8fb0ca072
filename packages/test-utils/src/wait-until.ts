import { sleep } from './sleep.js';

/** Options for {@link waitUntil}. */
export interface WaitUntilOptions {
  /** Give up after this many milliseconds (default 15000). */
  timeoutMs?: number;
  /** Delay between polls in milliseconds (default 25). */
  intervalMs?: number;
  /** Message of the Error the returned promise rejects with on timeout. */
  message?: string;
}

/**
 * Polls `fn` until it returns (or resolves to) `true`.
 *
 * A throw or rejection from `fn` counts as "not yet" rather than failing
 * immediately: the conditions tests poll for (a server refusing or accepting
 * connections, a key appearing) usually throw while they are still false.
 * The last such error is attached as `cause` of the timeout error.
 *
 * @param fn - condition to poll
 * @param opts - timeout, poll interval and timeout message
 * @returns resolves once `fn` is true; rejects with `opts.message` on timeout
 */
export async function waitUntil(fn: () => boolean | Promise<boolean>, opts: WaitUntilOptions = {}): Promise<void> {
  const { timeoutMs = 15_000, intervalMs = 25 } = opts;
  const message = opts.message ?? `waitUntil: condition not met within ${timeoutMs} ms`;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      // A condition that never settles must not outlive the timeout.
      if (await withinMs(Promise.resolve().then(fn), remaining)) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() + intervalMs > deadline) break;
    await sleep(intervalMs);
  }
  throw new Error(message, lastError === undefined ? undefined : { cause: lastError });
}

function withinMs(p: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
