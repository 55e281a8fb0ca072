import type { Cluster, Redis } from 'ioredis';
import type { RegistryKeys } from './keys.js';
import { listInstances, SESSION_STATUSES, type InstanceInfo, type SessionStatus } from './queries.js';

/** Fleet-wide counts read from the registry (see {@link readFleetCensus}). */
export interface FleetCensus {
  /** Sessions by their recorded status. */
  statuses: Record<SessionStatus, number>;
  /** Sessions whose desired state is running and that no live instance owns (waiting for adoption or placement). */
  ownerless: number;
  /** Sessions in the placement queue (nobody had room when they were last placed). */
  pending: number;
  /** Sessions with desired state stopped (gave up, logged out, stopped): waiting for a human. */
  stopped: number;
  /** Registered instances by state: live and taking sessions, live and draining, lease expired (not reaped yet). */
  instances: Record<'live' | 'draining' | 'expired', number>;
  /** Sum of the live instances' maxSessions, and the sessions they hold. */
  capacity: number;
  load: number;
}

/** Sessions read per HSCAN round trip: the census never blocks Redis for long, whatever the fleet's size. */
const SCAN_COUNT = 1000;

/** The fields of a session record the readers below use (see docs/registry.md for all). */
export interface SessionRecordView {
  owner?: string;
  status?: SessionStatus;
  desired?: string;
  reason?: string;
  epoch?: string;
  labels?: Record<string, string> | unknown[];
}

/**
 * Visits every session record of the registry in HSCAN batches of 1000: nothing that blocks Redis for long, whatever
 * the fleet's size (a record may be visited twice if the hash is resized meanwhile, as HSCAN allows).
 */
export async function forEachSessionRecord(
  redis: Redis | Cluster,
  keys: RegistryKeys,
  visit: (sessionId: string, record: SessionRecordView) => void,
): Promise<void> {
  let cursor = '0';
  do {
    const [next, entries] = await redis.hscan(keys.sessions, cursor, 'COUNT', SCAN_COUNT);
    cursor = next;
    for (let i = 0; i < entries.length; i += 2) visit(entries[i]!, JSON.parse(entries[i + 1]!) as SessionRecordView);
  } while (cursor !== '0');
}

/**
 * Counts the whole fleet from the registry: one script for the instances, then the session records in HSCAN
 * batches (O(sessions) work in this process). For a fleet's metrics, read by one instance, not every one. `visit`,
 * when given, sees every record of the same pass (with whether its owner is live), so a caller that also lists
 * sessions reads them once.
 */
export async function readFleetCensus(
  redis: Redis | Cluster,
  keys: RegistryKeys,
  known?: readonly InstanceInfo[],
  visit?: (sessionId: string, record: SessionRecordView, ownerLive: boolean) => void,
): Promise<FleetCensus> {
  const instances = known ?? (await listInstances(redis, keys));
  const live = new Map(instances.filter((i) => i.live).map((i) => [i.id, i]));
  const census: FleetCensus = {
    statuses: Object.fromEntries(SESSION_STATUSES.map((s) => [s, 0])) as Record<SessionStatus, number>,
    ownerless: 0,
    pending: await redis.zcard(keys.pending),
    stopped: 0,
    instances: {
      live: instances.filter((i) => i.live && !i.draining).length,
      draining: instances.filter((i) => i.live && i.draining).length,
      expired: instances.filter((i) => !i.live).length,
    },
    capacity: [...live.values()].reduce((sum, i) => sum + i.maxSessions, 0),
    load: [...live.values()].reduce((sum, i) => sum + i.load, 0),
  };
  await forEachSessionRecord(redis, keys, (sessionId, rec) => {
    const ownerLive = rec.owner !== undefined && live.has(rec.owner);
    if (rec.status && rec.status in census.statuses) census.statuses[rec.status]++;
    if (rec.desired === 'stopped') census.stopped++;
    else if (!ownerLive) census.ownerless++;
    visit?.(sessionId, rec, ownerLive);
  });
  return census;
}
