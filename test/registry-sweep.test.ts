import { registryKeys } from '@wafleet/core';
import { sleep, uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { describe, expect, it } from 'vitest';
import { sessionIds, startInstance, TEST_TIMING, useTestRedis, type InstanceProcess } from './helpers/fleet-harness.js';

const redis = useTestRedis();

/** Every change of the fleet's last sweep (`meta` sweptAt, sweptBy), polled every 10 ms while `until` is false. */
async function watchSweeps(namespace: string, until: () => boolean): Promise<Array<{ at: number; by: string }>> {
  const meta = registryKeys(namespace).meta;
  const seen: Array<{ at: number; by: string }> = [];
  while (!until()) {
    const [at, by] = await redis.client.hmget(meta, 'sweptAt', 'sweptBy');
    if (at && by && Number(at) !== seen.at(-1)?.at) seen.push({ at: Number(at), by });
    await sleep(10);
  }
  return seen;
}

describe('one sweep per interval for the whole fleet (issue 16)', () => {
  it('4 instances sweep once per interval between them; kill -9 of the one that swept last, and another sweeps on and adopts its sessions', async () => {
    const namespace = uniqueNamespace('sweep');
    const instances: InstanceProcess[] = [];
    for (const id of ['wa-1', 'wa-2', 'wa-3', 'wa-4']) {
      const inst = await startInstance({ redis: redis.url, namespace, instanceId: id, maxSessions: 20 });
      await inst.run('claim', { ids: sessionIds(id, 5) });
      instances.push(inst);
    }
    const windowMs = 3000;
    const t0 = Date.now();
    const steady = await watchSweeps(namespace, () => Date.now() - t0 >= windowMs);
    const interval = TEST_TIMING.sweepIntervalMs;
    // One sweep per interval between the four (a sweep falls due in Redis time and is claimed by the next renewal,
    // so intervals stretch by up to one heartbeat gap), never one per instance and interval.
    expect(steady.length).toBeGreaterThanOrEqual(windowMs / (interval + TEST_TIMING.heartbeatIntervalMs) - 1);
    expect(steady.length).toBeLessThanOrEqual(windowMs / interval + 1);
    for (let i = 1; i < steady.length; i++) expect(steady[i]!.at - steady[i - 1]!.at).toBeGreaterThanOrEqual(interval);

    const last = steady.at(-1)!;
    const victim = instances.find((i) => i.id === last.by)!;
    await victim.child.kill('SIGKILL');
    const killedAt = Date.now();
    const orphans = sessionIds(victim.id, 5);
    const key = registryKeys(namespace).sessions;
    let adopted = false;
    const after = watchSweeps(namespace, () => adopted);
    await waitUntil(
      async () => {
        const owners = await Promise.all(
          orphans.map(async (sid) => (JSON.parse((await redis.client.hget(key, sid))!) as { owner: string }).owner),
        );
        return owners.every((o) => o !== '' && o !== victim.id);
      },
      { timeoutMs: 20_000, message: "the dead sweeper's sessions were not adopted" },
    );
    adopted = true;
    const sweeps = await after;
    // Redis TIME and Date.now() read the same clock here. The victim may have claimed one more sweep between the end of
    // the window and its death (a renewal it sent as it died may reach Redis a moment later), never one after it.
    const next = sweeps.find((s) => s.by !== victim.id && s.at > killedAt);
    expect(next, 'another instance swept after the kill').toBeDefined();
    expect(sweeps.filter((s) => s.by === victim.id && s.at > killedAt + 50)).toEqual([]);
    console.log(
      `[sweep] ${steady.length} sweeps in ${windowMs} ms by ${new Set(steady.map((s) => s.by)).size} of 4 instances; ` +
        `${victim.id} (swept last) killed; next sweep by ${next!.by} ${next!.at - killedAt} ms after the kill; ` +
        `its sessions adopted ${Date.now() - killedAt} ms after the kill`,
    );
  });
});
