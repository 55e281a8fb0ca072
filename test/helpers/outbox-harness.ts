import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOutbox, type NewEvent, type Outbox, type OutboxOptions } from '@wafleet/core';
import { afterEach } from 'vitest';
import { startReceiver, type Receiver } from './receiver.js';

/**
 * Outboxes on fresh SQLite files and loopback receivers for one test file, closed after each test. The outboxes
 * retry fast (no jitter, 10 ms polls, no quick retries) and sign with `secret` unless `extra` says otherwise.
 */
export function useOutboxes(secret: string, scheduleMs: readonly number[] = [0, 20, 40, 80]) {
  const open: Outbox[] = [];
  const receivers: Receiver[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((o) => o.close()));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });
  const storePath = () => join(mkdtempSync(join(tmpdir(), 'wafleet-outbox-')), 'outbox.sqlite');
  return {
    dir: () => mkdtempSync(join(tmpdir(), 'wafleet-outbox-')),
    storePath,
    /** Lets the pump run a few times, so anything wrongly stored would have been sent. */
    settle: () => new Promise<void>((r) => setTimeout(r, 150)),
    /** Closes `o` after the test. */
    track<T extends Outbox>(o: T): T {
      open.push(o);
      return o;
    },
    async receiver(): Promise<Receiver> {
      const r = await startReceiver();
      receivers.push(r);
      return r;
    },
    async outbox(url: string, extra: Partial<OutboxOptions> = {}): Promise<Outbox> {
      const o = createOutbox({
        store: storePath(),
        endpoint: { url, secrets: [secret] },
        instance: { instanceId: 'wa-1', url: 'http://wa-1:3000' },
        scheduleMs,
        jitter: 0,
        pollIntervalMs: 10,
        quickRetries: 0,
        ...extra,
      });
      open.push(o);
      await o.start();
      return o;
    },
  };
}

/** A store-level event of session `s1` (what the outbox hands `OutboxStore.insert`), with the given body builder. */
export const storeEvent = (id: string, body: (seq: number) => string): NewEvent => ({
  id,
  session: 's1',
  type: 't',
  supersedeGroup: '',
  target: 'http://x/',
  createdAt: 1,
  body,
});
