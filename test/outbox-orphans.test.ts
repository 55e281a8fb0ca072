import { copyFileSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOutbox, SqliteOutboxStore, type Outbox, type OutboxOptions, type OutboxStore } from '@wafleet/core';
import { killAll, spawnProcess, waitUntil, type ChildHandle } from '@wafleet/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { useOutboxes } from './helpers/outbox-harness.js';
import type { Received, Receiver } from './helpers/receiver.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'outbox-instance.mjs');
const SECRET = `whsec_${Buffer.from('wafleet-orphan-outbox-secret-1').toString('base64')}`;
const { dir, receiver, outbox, settle } = useOutboxes(SECRET);

afterAll(() => killAll());

const N = 120;

/** An instance process with `count` events in `<dir>/<id>.sqlite` that it could not deliver; alive, lock held. */
async function deadEndInstance(d: string, id: string, r: Receiver): Promise<{ child: ChildHandle; file: string; expected: Set<string> }> {
  const child = spawnProcess(
    process.execPath,
    [fixture, JSON.stringify({ dir: d, id, url: `${r.url}/hooks`, secret: SECRET, count: N, sessions: 7 })],
    {
      name: id,
    },
  );
  await child.waitFor((m) => m.ev === 'enqueued', 30_000);
  const acks = child.messages.filter((m) => typeof m.ack === 'number') as Array<{ ack: number; id: string; status: boolean }>;
  // Older status events are superseded by the last one: they are never sent, by anyone.
  const lastStatus = acks.filter((a) => a.status).at(-1)!;
  const expected = new Set(acks.filter((a) => !a.status || a === lastStatus).map((a) => a.id));
  return { child, file: join(d, `${id}.sqlite`), expected };
}

/** Each event once, at its first delivery, in arrival order. */
function firstDeliveries(received: readonly Received[]): Received[] {
  const seen = new Set<string>();
  return received.filter((x) => !seen.has(x.json.id) && seen.add(x.json.id));
}

function lastWriteMs(file: string): number {
  const wal = `${file}-wal`;
  let last = statSync(file).mtimeMs;
  try {
    last = Math.max(last, statSync(wal).mtimeMs);
  } catch {
    // no WAL
  }
  return last;
}

/** Makes a file look unwritten for an hour. */
function backdate(file: string): void {
  const hourAgo = new Date(Date.now() - 3_600_000);
  for (const f of [file, `${file}-wal`]) {
    try {
      utimesSync(f, hourAgo, hourAgo);
    } catch {
      // no WAL
    }
  }
}

/** Opens an outbox file as its returning owner would and reports what is left in it. */
async function leftIn(file: string): Promise<{ pending: number; dead: number }> {
  const store = new SqliteOutboxStore(file);
  await store.open();
  const { pending, dead } = await store.counts();
  await store.close();
  return { pending, dead };
}

function adopter(r: Receiver, d: string, adoptOrphans: OutboxOptions['adoptOrphans'], id = 'wa-b'): Promise<Outbox> {
  return outbox(r.url, { store: join(d, `${id}.sqlite`), instance: { instanceId: id, url: `http://${id}:3000` }, adoptOrphans });
}

/** Checks that every expected event arrived, reports duplicates, and that each session's events came in seq order. */
function checkDelivered(r: Receiver, expected: Set<string>, label: string) {
  const first = firstDeliveries(r.received);
  const lost = [...expected].filter((id) => !first.some((x) => x.json.id === id));
  const duplicates = r.received.length - first.length;
  console.log(
    `${label}: ${expected.size} expected, ${first.length} distinct received, ${lost.length} lost, ${duplicates} duplicate deliveries`,
  );
  expect(lost).toEqual([]);
  expect(new Set(first.map((x) => x.json.id))).toEqual(expected);
  for (const session of new Set(first.map((x) => x.json.session))) {
    const seqs = first.filter((x) => x.json.session === session).map((x) => x.json.seq);
    expect(seqs, session).toEqual([...seqs].sort((a, b) => a - b));
  }
  return first;
}

/** Waits until every expected event arrived, then checks them (see checkDelivered). */
async function deliveredAll(r: Receiver, expected: Set<string>, label: string): Promise<Received[]> {
  await waitUntil(() => firstDeliveries(r.received).length >= expected.size, { timeoutMs: 30_000, message: `${label}: events missing` });
  await settle();
  return checkDelivered(r, expected, label);
}

/** Lets the adopter scan ten times and checks that it took nothing and nothing was sent. */
async function adoptedNothing(b: Outbox, r: Receiver): Promise<void> {
  await waitUntil(() => b.stats().orphans.scans >= 10);
  expect(b.stats().orphans).toMatchObject({ files: 0, events: 0 });
  await settle();
  expect(r.received).toEqual([]);
}

/** A receiver that is up again after an instance with undelivered events in `<d>/wa-a.sqlite` was kill -9ed. */
async function afterKill(r: Receiver, d: string) {
  await r.down();
  const a = await deadEndInstance(d, 'wa-a', r);
  await a.child.kill('SIGKILL');
  await r.up();
  return a;
}

describe('an orphaned outbox moves on', () => {
  it('a kill -9ed instance’s events are delivered by a live instance on the same volume, with their original ids, once each after dedupe', async () => {
    const r = await receiver();
    const d = dir();
    const a = await afterKill(r, d);
    const b = await adopter(r, d, { idleMs: 300, intervalMs: 50 });
    const first = await deliveredAll(r, a.expected, 'orphan adoption after kill -9');
    // Bodies as the dead instance built them (its instance, its epoch); signed by the adopter's secret.
    expect(first.every((x) => (x.json as unknown as { instance: { id: string } }).instance.id === 'wa-a' && x.json.epoch === '7')).toBe(
      true,
    );
    expect(b.stats().orphans).toEqual({ scans: expect.any(Number), files: 1, events: a.expected.size });
    // The returning owner would find nothing left to send twice.
    await b.close();
    expect(await leftIn(a.file)).toEqual({ pending: 0, dead: 0 });
  });

  it('a live instance’s file is never adopted however long it is idle; once the process is killed it is', async () => {
    const r = await receiver();
    await r.down();
    const d = dir();
    const a = await deadEndInstance(d, 'wa-a', r);
    // Quiet: every first attempt failed and was recorded; the next ones are an hour away.
    await waitUntil(() => Date.now() - lastWriteMs(a.file) > 300, { message: 'the live instance kept writing its file' });
    await r.up();
    const writtenAt = lastWriteMs(a.file);
    const b = await adopter(r, d, { idleMs: 300, intervalMs: 20 });
    await adoptedNothing(b, r);
    // The file was idle enough all along (nothing wrote it): only its owner's lock kept it.
    expect(lastWriteMs(a.file)).toBe(writtenAt);
    expect(a.child.alive()).toBe(true);

    await a.child.kill('SIGKILL');
    await deliveredAll(r, a.expected, 'adoption after the live owner was killed');
  });

  it('a file written recently is not adopted', async () => {
    const r = await receiver();
    const d = dir();
    const a = await afterKill(r, d);
    const b = await adopter(r, d, { idleMs: 60_000, intervalMs: 20 });
    await adoptedNothing(b, r);
    // The same file, unwritten for an hour: now it is an orphan.
    backdate(a.file);
    await deliveredAll(r, a.expected, 'adoption once idle');
  });

  it('a new instance pointed at a dead instance’s file delivers its events', async () => {
    const r = await receiver();
    const a = await afterKill(r, dir());
    await outbox(r.url, { store: a.file, instance: { instanceId: 'wa-new', url: 'http://wa-new:3000' } });
    await deliveredAll(r, a.expected, 'store: oldFile');
  });

  it('dead letters move as dead letters and stay replayable; adopted events go in order, after what was pending and before what comes later', async () => {
    const r = await receiver();
    const d = dir();
    // The instance that will be gone: two dead letters, and session s1 stuck behind a 503 with a superseded status.
    r.reply = (x) => ({ status: x.json.type === 'rejected' ? 400 : 503 });
    const x = await outbox(r.url, {
      store: join(d, 'wa-x.sqlite'),
      instance: { instanceId: 'wa-x', url: 'http://wa-x:3000' },
      scheduleMs: [0, 3_600_000],
    });
    const rejected = [(await x.enqueue({ type: 'rejected', session: 's2' })).id, (await x.enqueue({ type: 'rejected' })).id];
    const m1 = await x.enqueue({ type: 'message', session: 's1', data: { n: 1 } });
    for (const status of ['STARTING', 'WORKING']) {
      await x.enqueue({ type: 'session.status', session: 's1', data: { status, previous: '' }, supersedeGroup: 'session.status' });
    }
    const m2 = await x.enqueue({ type: 'message', session: 's1', data: { n: 2 } });
    await waitUntil(async () => (await x.deadLetters()).length === 2 && r.received.some((e) => e.json.id === m1.id));
    await x.close();
    backdate(join(d, 'wa-x.sqlite'));
    // A SQLite-named file that is not an outbox stays untouched.
    writeFileSync(join(d, 'notes.sqlite'), 'not a database');
    backdate(join(d, 'notes.sqlite'));

    // The adopter already has an s1 event waiting when it adopts.
    await r.down();
    r.reply = () => ({ status: 204 });
    const b0 = await outbox(r.url, { store: join(d, 'wa-b.sqlite'), instance: { instanceId: 'wa-b', url: 'http://wa-b:3000' } });
    const before = await b0.enqueue({ type: 'message', session: 's1', data: { n: 'before' } });
    await b0.close();
    const b = await adopter(r, d, { idleMs: 60_000, intervalMs: 20 });
    const adopted = await new Promise((resolve) => b.once('adopted', resolve));
    expect(adopted).toEqual({ file: join(d, 'wa-x.sqlite'), pending: 3, dead: 2, left: 0 });
    const later = await b.enqueue({ type: 'message', session: 's1', data: { n: 'later' } });
    const received = r.received.length;
    await r.up();
    await waitUntil(() => firstDeliveries(r.received.slice(received)).length === 5);
    await settle();
    const s1 = firstDeliveries(r.received.slice(received)).map((e) => [e.json.type, e.json.data]);
    expect(s1).toEqual([
      ['message', { n: 'before' }],
      ['message', { n: 1 }],
      ['session.status', { status: 'WORKING', previous: '' }],
      ['message', { n: 2 }],
      ['message', { n: 'later' }],
    ]);
    expect(
      firstDeliveries(r.received).filter((e) => e.json.id === m2.id || e.json.id === before.id || e.json.id === later.id),
    ).toHaveLength(3);
    expect((await b.deadLetters()).map((e) => e.id).sort()).toEqual([...rejected].sort());
    expect(await b.replay({ ids: rejected })).toBe(2);
    await waitUntil(() => rejected.every((id) => r.received.filter((e) => e.json.id === id).length === 2));
    expect(readFileSync(join(d, 'notes.sqlite'), 'utf8')).toBe('not a database');
    expect(await leftIn(join(d, 'wa-x.sqlite'))).toEqual({ pending: 0, dead: 0 });
  });

  it('after a crash between the two commits the events are in both files: adopted again, none is lost or sent twice', async () => {
    const r = await receiver();
    await r.down();
    const d = dir();
    const orphanFile = join(d, 'wa-x.sqlite');
    const x = await outbox(r.url, {
      store: orphanFile,
      instance: { instanceId: 'wa-x', url: 'http://wa-x:3000' },
      scheduleMs: [0, 3_600_000],
    });
    const ids = new Set<string>();
    for (let n = 0; n < 5; n++) ids.add((await x.enqueue({ type: 'message', session: `s${n % 2}`, data: { n } })).id);
    await x.close();
    // The orphan as it was before the adopter's second commit.
    const beforeDelete = join(dir(), 'copy.sqlite');
    copyFileSync(orphanFile, beforeDelete);
    backdate(orphanFile);
    await r.up();
    const b = await adopter(r, d, { idleMs: 60_000, intervalMs: 20 });
    await waitUntil(() => firstDeliveries(r.received).length === 5);
    copyFileSync(beforeDelete, orphanFile);
    backdate(orphanFile);
    await waitUntil(() => b.stats().orphans.files === 2);
    await deliveredAll(r, ids, 'crash between the commits');
    expect(r.received).toHaveLength(5);
    expect(await leftIn(orphanFile)).toEqual({ pending: 0, dead: 0 });
  });

  it('refuses adoptOrphans options it cannot honour with ConfigError naming the option', () => {
    const base = { endpoint: { url: 'http://x', secrets: [SECRET] }, instance: { instanceId: 'a', url: 'http://a' } };
    const memory = new SqliteOutboxStore(':memory:');
    const cases: Array<[Partial<OutboxOptions>, string]> = [
      [{ store: ':memory:', adoptOrphans: {} }, 'adoptOrphans.dir'],
      [{ store: '/tmp/x/a.sqlite', adoptOrphans: { idleMs: 0 } }, 'adoptOrphans.idleMs'],
      [{ store: '/tmp/x/a.sqlite', adoptOrphans: { intervalMs: -1 } }, 'adoptOrphans.intervalMs'],
      [{ store: '/tmp/x/a.sqlite', adoptOrphans: true as unknown as object }, 'adoptOrphans'],
      [{ store: { insert: memory.insert.bind(memory) } as unknown as OutboxStore, adoptOrphans: { dir: '/tmp' } }, 'adoptOrphans'],
    ];
    for (const [options, option] of cases) {
      expect(() => createOutbox({ ...base, ...options } as OutboxOptions), option).toThrow(
        expect.objectContaining({ code: 'WAFLEET_CONFIG', option }),
      );
    }
  });
});
