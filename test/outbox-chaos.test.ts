import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll, sleep, spawnProcess, waitUntil } from '@wafleet/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { startReceiver } from './helpers/receiver.js';

const producer = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'outbox-producer.mjs');
const SECRET = `whsec_${Buffer.from('wafleet-chaos-secret-000000').toString('base64')}`;

afterAll(() => killAll());

describe('outbox under kill -9 and receiver outages (G6)', () => {
  it('10,000 events, 20 kill -9s at random moments, a flapping receiver: every acknowledged event arrives', async () => {
    const TOTAL = 10_000;
    const KILLS = 20;
    const store = join(mkdtempSync(join(tmpdir(), 'wafleet-chaos-')), 'outbox.sqlite');
    const receiver = await startReceiver();
    const seen = new Map<number, number>();
    receiver.reply = (r) => {
      const n = (r.json.data as { n: number }).n;
      seen.set(n, (seen.get(n) ?? 0) + 1);
      return { status: 200 };
    };
    // The receiver goes down and up at random, independently of the kills.
    let flapping = true;
    const flapper = (async () => {
      while (flapping) {
        await sleep(200 + Math.random() * 600);
        if (!flapping) break;
        await receiver.down();
        await sleep(100 + Math.random() * 400);
        await receiver.up();
      }
    })();

    const acked = new Set<number>();
    let next = 1;
    for (let life = 0; life <= KILLS; life++) {
      const child = spawnProcess(
        process.execPath,
        [producer, JSON.stringify({ store, url: `${receiver.url}/hooks`, secret: SECRET, from: next, to: TOTAL, sessions: 50 })],
        {
          name: `producer-${life}`,
        },
      );
      await child.waitFor((m) => m.ev === 'ready', 20_000);
      if (life < KILLS) {
        await sleep(300 + Math.random() * 900);
        await child.kill('SIGKILL');
      } else {
        await child.waitFor((m) => m.ev === 'enqueued', 120_000);
        flapping = false;
        await flapper;
        await receiver.up();
        await child.waitFor((m) => m.ev === 'drained', 120_000);
      }
      for (const m of child.messages) if (typeof m.ack === 'number') acked.add(m.ack);
      // Continue after the last acknowledged event; an enqueued but unacknowledged one may be sent twice. A life killed
      // before its first acknowledgement starts the next one at the same number (not one further, which skipped it).
      next = Math.max(0, ...acked) + 1;
      if (life === KILLS) await child.kill('SIGKILL');
    }
    await waitUntil(() => [...acked].every((n) => seen.has(n)), { timeoutMs: 30_000, message: 'acknowledged events were lost' });
    const lost = [...acked].filter((n) => !seen.has(n));
    const duplicates = [...seen.values()].reduce((sum, c) => sum + (c - 1), 0);
    console.log(
      `outbox chaos: ${acked.size} acknowledged, ${seen.size} distinct received, ${lost.length} lost, ${duplicates} duplicate deliveries over ${KILLS} kill -9s`,
    );
    expect(acked.size).toBe(TOTAL);
    expect(lost).toEqual([]);
    await receiver.close();
  });
});
