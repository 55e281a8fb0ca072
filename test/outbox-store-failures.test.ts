import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll, spawnProcess } from '@wafleet/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { startReceiver } from './helpers/receiver.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'outbox-disk-full.mjs');
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

afterAll(() => killAll());

describe('outbox on a full disk', () => {
  it('a store that fills up emits error once, backs off, and refuses enqueue with WAFLEET_OUTBOX_STORE', async () => {
    const receiver = await startReceiver();
    // Retried answers make every delivery attempt write to the full store.
    receiver.reply = () => ({ status: 503 });
    const store = join(mkdtempSync(join(tmpdir(), 'wafleet-disk-full-')), 'outbox.sqlite');
    const config = JSON.stringify({ store, url: `${receiver.url}/hooks`, secret: SECRET, windowMs: 2000 });
    // A real write failure without root or a mount: past the file size limit write() fails with EFBIG (SIGXFSZ
    // ignored), which SQLite reports like a full disk. The limit is in KiB.
    const child = spawnProcess('bash', ['-c', `trap '' XFSZ; ulimit -f 512; exec "${process.execPath}" "$0" "$1"`, fixture, config], {
      name: 'outbox-disk-full',
    });
    const full = await child.waitFor((m) => m.ev === 'full', 30_000);
    const window = await child.waitFor((m) => m.ev === 'window', 30_000);
    const later = await child.waitFor((m) => m.ev === 'later', 30_000);
    await child.exited;
    await receiver.close();
    console.log(`disk full: ${String(window.errors)} error events in the 2 s window, ${receiver.received.length} delivery attempts in all`);
    // Deliveries went on against the full store during the window, yet the episode was reported once (before it).
    expect(receiver.received.length).toBeGreaterThan(0);
    expect(child.messages.filter((m) => m.ev === 'error').length).toBeGreaterThanOrEqual(1);
    expect(window.errors).toBeLessThanOrEqual(1);
    expect(full).toMatchObject({ name: 'OutboxStoreError', code: 'WAFLEET_OUTBOX_STORE' });
    expect(full.pending).toBeGreaterThan(0);
    expect(later).toMatchObject({ name: 'OutboxStoreError', code: 'WAFLEET_OUTBOX_STORE' });
  });
});
