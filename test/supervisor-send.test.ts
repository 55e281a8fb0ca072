import { createSupervisor, SendError, type Fleet, type Supervisor } from '@wafleet/core';
import { createSupervisorMetrics } from '@wafleet/core/express';
import { createSimEngine, type SimEngine } from '@wafleet/sim';
import { uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { testFleet, useTestRedis } from './helpers/fleet-harness.js';

const redis = useTestRedis();
const closers: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

const ACK_TIMEOUT_MS = 300;

async function host(): Promise<{ fleet: Fleet; supervisor: Supervisor; sim: SimEngine }> {
  const fleet = testFleet(redis.url, uniqueNamespace('send'), 'wa-1');
  const sim = createSimEngine();
  const supervisor = createSupervisor({
    fleet,
    engine: sim.factory,
    sends: { ackTimeoutMs: ACK_TIMEOUT_MS, restartAfter: 3 },
    restart: { baseMs: 50, maxMs: 100, maxAttempts: 5 },
  });
  await fleet.start();
  supervisor.start();
  closers.push(
    () => fleet.close(),
    () => supervisor.close(),
  );
  return { fleet, supervisor, sim };
}

async function sendError(p: Promise<unknown>): Promise<SendError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SendError);
  return err as SendError;
}

describe('supervisor.send: a send answers with the message id and its acknowledgement, or fails visibly', () => {
  it('answers with the id once the server acknowledged it', async () => {
    const { supervisor } = await host();
    await supervisor.startSession('snd-1');
    await waitUntil(() => supervisor.session('snd-1')?.status === 'WORKING');
    const sent = await supervisor.send('snd-1', '5511999990000@c.us', 'hello');
    expect(sent).toEqual({ id: expect.stringMatching(/^true_sim_snd-1_/), ack: 1 });
    expect(supervisor.stats().sends).toEqual({ acknowledged: 1, unacknowledged: 0, failed: 0, refused: 0 });
  });

  it('refuses at once while the session is not WORKING here (nothing sent)', async () => {
    const { supervisor } = await host();
    const unknown = await sendError(supervisor.send('nowhere', 'c@c.us', 'x'));
    expect(unknown).toMatchObject({ code: 'WAFLEET_SESSION_NOT_WORKING', sessionId: 'nowhere', messageId: undefined });
    await supervisor.startSession('snd-2');
    // Still starting: refused without waiting for it.
    const starting = await sendError(supervisor.send('snd-2', 'c@c.us', 'x'));
    expect(starting.code).toBe('WAFLEET_SESSION_NOT_WORKING');
    expect(supervisor.stats().sends.refused).toBe(2);
  });

  it('a send the server never acknowledges fails with its id after the bound; three in a row restart the session as a zombie', async () => {
    const { supervisor, sim } = await host();
    await supervisor.startSession('snd-3');
    await waitUntil(() => supervisor.session('snd-3')?.status === 'WORKING');
    // The page takes messages, but nothing reaches the server (a socket that died without a disconnect).
    sim.fault('snd-3', 'drop-acks');
    for (let i = 0; i < 3; i++) {
      const err = await sendError(supervisor.send('snd-3', 'c@c.us', `m${i}`));
      expect(err.code).toBe('WAFLEET_SEND_UNACKNOWLEDGED');
      expect(err.messageId).toMatch(/^true_sim_snd-3_/);
    }
    expect(supervisor.session('snd-3')!.failure).toMatchObject({ class: 'unacknowledged-sends' });
    // Restarted with a fresh engine, sends are acknowledged again.
    await waitUntil(() => supervisor.session('snd-3')?.status === 'WORKING' && supervisor.session('snd-3')!.restarts === 1);
    await expect(supervisor.send('snd-3', 'c@c.us', 'again')).resolves.toMatchObject({ ack: 1 });
    const metrics = await createSupervisorMetrics(supervisor, new Registry()).metrics();
    expect(metrics).toMatch(/^wafleet_sends_total\{outcome="unacknowledged"\} 3$/m);
    expect(metrics).toMatch(/^wafleet_sends_total\{outcome="acknowledged"\} 1$/m);
    expect(metrics).toMatch(/^wafleet_session_failures_total\{class="unacknowledged-sends"\} 1$/m);
  });

  it('a send on a dead page (probe not run yet) is not a silent success', async () => {
    const { supervisor, sim } = await host();
    await supervisor.startSession('snd-4');
    await waitUntil(() => supervisor.session('snd-4')?.status === 'WORKING');
    sim.fault('snd-4', 'zombie');
    const err = await sendError(supervisor.send('snd-4', 'c@c.us', 'x'));
    expect(err.code).toBe('WAFLEET_SEND_UNACKNOWLEDGED');
  });

  it('refuses bad arguments with a ConfigError', async () => {
    const { supervisor } = await host();
    await expect(supervisor.send('snd-5', '', 'x')).rejects.toThrow(/chatId/);
    await expect(supervisor.send('snd-5', 'c@c.us', 5 as never)).rejects.toThrow(/text/);
    await expect(supervisor.send('bad id', 'c@c.us', 'x')).rejects.toThrow(/session/i);
  });
});
