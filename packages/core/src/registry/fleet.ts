import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import {
  connect,
  connectionFor,
  describeValue as describe,
  disconnect,
  labelsArg,
  LeaseLostError,
  listInstances,
  lua,
  lookupOwner,
  metadataArg,
  open,
  FENCE_REASONS,
  NotOwnerError,
  OwnedElsewhereError,
  parsePush,
  placeSession,
  registryKeys,
  replyError,
  serializeMetadata,
  SESSION_STATUSES,
  StateError,
  STOP_REASON_KINDS,
  stopReason,
  stopUnowned,
  validateSessionId,
  WafleetError,
  type Connection,
  type FenceReason,
  type InstanceInfo,
  type PlaceOptions,
  type PlaceResult,
  type RegistryKeys,
  type SessionMetadata,
  type SessionOwner,
  type SessionStatus,
  ConfigError,
  RedisReplyError,
} from '@wafleet/protocol';
import { exposeFleetInternals, outboxInternals } from '../internals.js';
import { checkUploadId } from '../session-data/files.js';
import type { CommittedVersion, SessionDataCommit, SessionDataDrop, SessionDataUpload } from '../session-data/types.js';
import { resolveFleetOptions, type FleetOptions, type ResolvedFleetOptions, type StopSession } from './options.js';

export { SESSION_STATUSES, type InstanceInfo, type PlaceOptions, type PlaceResult, type SessionOwner, type SessionStatus };

/** Longest reason `setStatus` and `release` record. */
const MAX_REASON = 200;

/** Validates a reason given to `setStatus`/`release`: a kind of the closed vocabulary, optionally `: detail`. */
function checkReason(reason: unknown): string {
  const ok =
    typeof reason === 'string' &&
    reason.length <= MAX_REASON &&
    // eslint-disable-next-line no-control-regex
    !/[\u0000-\u001f\u007f]/.test(reason) &&
    STOP_REASON_KINDS.some((kind) => reason === kind || reason.startsWith(`${kind}: `));
  if (!ok) {
    throw new WafleetError(
      'WAFLEET_CONFIG',
      `Expected reason to be one of ${STOP_REASON_KINDS.map((k) => `'${k}'`).join(', ')}, optionally followed by ': <detail>' (at most ${MAX_REASON} characters), got ${describe(reason)}`,
    );
  }
  return reason;
}

/** Default of `uploadTimeoutMs`: an upload not committed within 10 minutes is garbage. */
export const SESSION_DATA_UPLOAD_TIMEOUT_MS = 600_000;

/** Claim refusals that name another owner (live, or expiring and about to be adopted): not this instance's to take back. */
function ownedByOthers(err: unknown): boolean {
  const code = (err as WafleetError | undefined)?.code;
  return code === 'WAFLEET_OWNED_ELSEWHERE' || code === 'WAFLEET_OWNER_EXPIRING';
}

/** Reads a pointer of the data hash, checking its shape: Redis is shared state, another version may have written it. */
function parseCommittedVersion(sessionId: string, raw: string): CommittedVersion {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    throw new RedisReplyError('data', raw);
  }
  const num = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  const str = (x: unknown) => typeof x === 'string' && x.length > 0;
  if (
    !v ||
    !num(v.version) ||
    !str(v.uploadId) ||
    !num(v.size) ||
    !str(v.sha256) ||
    !str(v.epoch) ||
    !str(v.writer) ||
    !num(v.committedAt)
  ) {
    throw new RedisReplyError('data', raw);
  }
  return {
    sessionId,
    version: v.version as number,
    uploadId: v.uploadId as string,
    size: v.size as number,
    sha256: v.sha256 as string,
    epoch: v.epoch as string,
    writer: v.writer as string,
    committedAt: v.committedAt as number,
  };
}

/** Lifecycle of a fleet instance. `fenced`: lease lost or self-fence deadline passed; it tries to recover. */
export type FleetState = 'idle' | 'starting' | 'active' | 'fenced' | 'draining' | 'closed';

/** Result of a successful {@link Fleet.claim}. */
export interface Ownership {
  sessionId: string;
  /** Fencing epoch, a decimal string (it exceeds 2^53 over time); compare with {@link compareEpochs}. */
  epoch: string;
  /** Instance that owned the session before, '' when none. */
  previousOwner: string;
}

/** A session became ours without this instance asking (placement, adoption, handoff, or recovery). */
export interface AssignedEvent {
  sessionId: string;
  epoch: string;
  /** `placed`: by placement, adoption or handoff; `reclaimed`: taken back after this instance was fenced. */
  reason: 'placed' | 'reclaimed';
}

/** Sessions this instance must stop at once: it no longer owns them (or cannot prove it does). */
export interface FencedEvent {
  sessionIds: string[];
  reason: FenceReason;
}

/** A session kept running under a new epoch (re-asserted after Redis lost its data). */
export interface EpochEvent {
  sessionId: string;
  epoch: string;
}

/** Result of {@link Fleet.drain}. */
export interface DrainResult {
  handedOff: number;
  /** Released, but no other instance had capacity: the sweep places them when one does. */
  pending: number;
  /** Could not be stopped or released; they stay here until the lease expires. */
  failed: number;
  /** Per session: stop plus release, in ms. */
  durationsMs: number[];
}

/** Counters for metrics and tests. */
export interface FleetStats {
  renewals: number;
  renewalFailures: number;
  /** Longest gap between two heartbeat attempts (ms): how long the event loop or process was stalled. */
  maxHeartbeatGapMs: number;
  fencedSessions: number;
  /** `fencedSessions` by reason. */
  fencedByReason: Record<FenceReason, number>;
  claims: Record<'ok' | 'refused' | 'error', number>;
  /** Sweeps this instance ran: the fleet's one per `sweepIntervalMs`, claimed by whichever renewal found it due. */
  sweeps: number;
  /** Sessions this instance's sweeps placed (adopted orphans and retried placements). */
  sweepPlaced: number;
  handoffs: number;
  reRegistrations: number;
  /** New eras seen (Redis lost its data, failed over or restarted from its files): every session re-asserted. */
  newEras: number;
  /**
   * Session starts that waited for a replica to have their grant (see {@link Fleet.replicated}): `acked` in time,
   * `timeout` not within `replicaAckTimeoutMs` (started anyway).
   */
  replicaAcks: Record<'acked' | 'timeout', number>;
}

/** Events of a {@link Fleet}. */
export interface FleetEvents {
  assigned: [AssignedEvent];
  fenced: [FencedEvent];
  epoch: [EpochEvent];
  leaseLost: [{ reason: FenceReason }];
  leaseRestored: [{ incarnation: string }];
  /**
   * Redis failed over to a replica, restarted from its files or lost its data: the registry started a new era with a
   * quarantine, and this instance re-asserted the sessions it runs (`reasserted`; `lost` are now another's).
   */
  era: [{ era: string; reasserted: number; lost: number }];
  /**
   * This instance's sweep assigned orphans of dead instances: for each, the ms from its dead owner's lease deadline to
   * the new assignment.
   */
  adopted: [{ delaysMs: number[] }];
  /** A session was handed off (drain, recycle, rebalance, `handoff()`): its engine stop plus the release took `durationMs`. */
  handoff: [{ sessionId: string; outcome: 'handed-off' | 'pending'; durationMs: number }];
  /** A lease renewal was acknowledged: `selfFenceInMs` is the new self-fence deadline (for the dead-man switch). */
  renewed: [{ selfFenceInMs: number }];
  state: [FleetState];
  error: [Error];
  closed: [];
}

const newIncarnation = () => randomBytes(8).toString('hex');

/** Creates a fleet member for this instance. Call `start()` to register it. */
export function createFleet(options: FleetOptions): Fleet {
  return new Fleet(options);
}

/**
 * This instance's membership in the fleet: its lease, the sessions it owns, and the registry operations.
 * @example
 * const fleet = createFleet({ redis: 'redis://127.0.0.1:6379', instanceId: 'wa-1', url: 'http://wa-1:3000', maxSessions: 20 });
 * fleet.on('assigned', ({ sessionId, epoch }) => startSession(sessionId, epoch));
 * fleet.on('fenced', ({ sessionIds }) => sessionIds.forEach(stopSessionNow));
 * await fleet.start();
 * await fleet.claim('5511999990000');
 */
export class Fleet extends EventEmitter<FleetEvents> {
  readonly #options: ResolvedFleetOptions;
  readonly #keys: RegistryKeys;
  #state: FleetState = 'idle';
  #incarnation = newIncarnation();
  #era = '';
  /** Connected replicas of the registry's Redis, from the last renewal: a start waits for one to have its grant. */
  #replicas = 0;
  /** While the registry is in quarantine (monotonic ms), the local view is not reconciled with the registry. */
  #quarantineUntil = 0;
  #cmd: Connection | undefined;
  #ack: Connection | undefined;
  #ackOpen: Promise<void> | undefined;
  #hb: Connection | undefined;
  #sub: Connection | undefined;
  /** Monotonic time after which this instance must assume its lease is gone. */
  #selfFenceAt = 0;
  #lastBeatAt = 0;
  /** Browser memory the supervisor reported last, and the figure the registry has (JSON, '' for none). */
  #memoryUsed: number | undefined;
  #memorySent = '';
  readonly #owned = new Map<string, string>();
  readonly #ownedSince = new Map<string, number>();
  /** Sessions stopped by a fence, to take back when this instance holds a lease again. */
  readonly #toReclaim = new Map<string, string>();
  readonly #inflight = new Map<string, number>();
  /** Last status announced per session, so a repeated status sends no webhook. */
  readonly #statuses = new Map<string, SessionStatus>();
  /** Metadata of sessions owned here, as last written or read, for the status webhooks. */
  readonly #metadata = new Map<string, SessionMetadata>();
  #stopSession: StopSession | undefined;
  /** How long a release or handoff waits for `#stopSession`: the deadline of whoever owns the stop. */
  #stopTimeoutMs: number;
  #beatTimer: NodeJS.Timeout | undefined;
  #fenceTimer: NodeJS.Timeout | undefined;
  #startPromise: Promise<void> | undefined;
  #drainPromise: Promise<DrainResult> | undefined;
  #closePromise: Promise<void> | undefined;
  #recovering = false;
  readonly #stats: FleetStats = {
    renewals: 0,
    renewalFailures: 0,
    maxHeartbeatGapMs: 0,
    fencedSessions: 0,
    fencedByReason: Object.fromEntries(FENCE_REASONS.map((r) => [r, 0])) as Record<FenceReason, number>,
    claims: { ok: 0, refused: 0, error: 0 },
    sweeps: 0,
    sweepPlaced: 0,
    handoffs: 0,
    reRegistrations: 0,
    newEras: 0,
    replicaAcks: { acked: 0, timeout: 0 },
  };

  constructor(options: FleetOptions) {
    super();
    this.#options = resolveFleetOptions(options);
    this.#keys = registryKeys(this.#options.namespace, this.#options.redis.db);
    this.#stopSession = this.#options.stopSession;
    this.#stopTimeoutMs = this.#options.stopTimeoutMs;
    exposeFleetInternals(this, { options: this.#options, keys: this.#keys, redis: () => this.#redis() });
    // The outbox sends this fleet's status webhooks: it sends as this instance, configured here once.
    if (this.#options.outbox) outboxInternals(this.#options.outbox).identify(this);
  }

  /** This instance's id (the `instanceId` option). */
  get instanceId(): string {
    return this.#options.instanceId;
  }

  /** The URL callers reach this instance's HTTP API at (the `url` option). */
  get url(): string {
    return this.#options.url;
  }

  /** The fleet's namespace. */
  get namespace(): string {
    return this.#options.namespace;
  }

  /** Most sessions this instance may hold, starting ones included (the `maxSessions` option). */
  get maxSessions(): number {
    return this.#options.maxSessions;
  }

  /** Current lifecycle state. */
  get state(): FleetState {
    return this.#state;
  }

  /** This process's current incarnation (changes on every re-registration). */
  get incarnation(): string {
    return this.#incarnation;
  }

  /** The registry's data era; it changes when Redis lost its data. */
  get era(): string {
    return this.#era;
  }

  /**
   * Waits until a replica of the registry's Redis has every write this instance made so far (`WAIT 1`), for at most
   * `replicaAckTimeoutMs`. The supervisor calls it before it starts the
   * engine, so a failover to that replica keeps the session's grant. Resolves true at once when the registry had no
   * replica at the last renewal, or with `replicaAckTimeoutMs: 0`. When no replica answers in time it resolves false,
   * counts it in `stats().replicaAcks.timeout` and logs it; the start goes on (replicas may be gone for good, and a
   * fleet should not stop starting sessions then), and a failover to a replica that missed the grant is caught by the
   * new era's quarantine, in which this instance re-asserts the session.
   */
  async replicated(): Promise<boolean> {
    const timeoutMs = this.#options.replicaAckTimeoutMs;
    if (this.#replicas === 0 || timeoutMs === 0 || !this.#cmd || this.#state === 'closed') return true;
    let acked = 0;
    try {
      // WAIT counts the replicas that have every write of its own connection, and blocks that connection meanwhile:
      // its own connection, and a write on it after the grant (replication is one ordered stream) makes it cover the
      // grant, whichever connection wrote that.
      if (!this.#ack) {
        const ack = connect(this.#options.redis, 'replica-ack', this.#options);
        ack.client.on('error', (err: Error) => this.#options.logger.debug('redis connection error', { err }));
        this.#ack = ack;
        this.#ackOpen = open(ack, this.#options.redis);
      }
      await this.#ackOpen;
      const node = connectionFor(this.#ack.client, this.#keys.replicaAck);
      if (!node) return true;
      const replies = await node
        .pipeline()
        .set(this.#keys.replicaAck, this.#options.instanceId, 'PX', 60_000)
        .call('WAIT', 1, timeoutMs)
        .exec();
      const [err, count] = replies?.[1] ?? [new Error('no reply')];
      if (err) throw err;
      acked = Number(count);
    } catch (err) {
      this.#options.logger.warn('replica acknowledgement failed', { err });
    }
    if (acked >= 1) {
      this.#stats.replicaAcks.acked++;
      return true;
    }
    this.#stats.replicaAcks.timeout++;
    this.#options.logger.warn('no replica acknowledged the grant in time; starting anyway', { timeoutMs });
    return false;
  }

  /** Milliseconds until this instance self-fences without another acknowledged renewal (negative: past). */
  get selfFenceInMs(): number {
    return this.#selfFenceAt - performance.now();
  }

  /** A copy of the counters. */
  stats(): FleetStats {
    return structuredClone(this.#stats);
  }

  /** Sessions this instance owns now, with their epochs. */
  ownedSessions(): Map<string, string> {
    return new Map(this.#owned);
  }

  /** Whether this instance owns `sessionId` and its self-fence deadline has not passed. */
  owns(sessionId: string): boolean {
    return this.#owned.has(sessionId) && !this.#pastDeadline();
  }

  /** The epoch under which this instance owns `sessionId`, or undefined when it does not (or cannot prove it). */
  epochOf(sessionId: string): string | undefined {
    return this.#pastDeadline() ? undefined : this.#owned.get(sessionId);
  }

  /** Whether this instance holds a lease it can prove (registered, not fenced, self-fence deadline ahead). */
  get leaseValid(): boolean {
    return (this.#state === 'active' || this.#state === 'draining') && !this.#pastDeadline();
  }

  /** Registers this instance, opens its connections and starts heartbeats and sweeps. Idempotent. */
  start(): Promise<void> {
    this.#startPromise ??= this.#start();
    return this.#startPromise;
  }

  async #start(): Promise<void> {
    if (this.#closePromise) throw new StateError('WAFLEET_CLOSED', 'This fleet was closed; create a new one');
    this.#setState('starting');
    const options = this.#options;
    try {
      this.#cmd = connect(options.redis, 'command', options);
      this.#hb = connect(options.redis, 'heartbeat', options);
      this.#sub = connect(options.redis, 'subscriber', options);
      for (const conn of [this.#cmd, this.#hb, this.#sub]) {
        // ioredis emits 'error' on every failed reconnect; an unhandled one would crash the host.
        if (conn.owned) conn.client.on('error', (err: Error) => options.logger.debug('redis connection error', { err }));
        await open(conn, options.redis);
      }
      const sub = this.#sub.client;
      sub.on('message', (channel: string, message: string) => this.#onPush(channel, message));
      await sub.subscribe(this.#keys.events);
      // A subscriber that reconnects missed pushes: compare with the registry.
      sub.on('ready', () => void this.#reconcile());
      await this.#register();
    } catch (err) {
      await this.#closeConnections();
      this.#setState('closed');
      throw err;
    }
    this.#setState('active');
    this.#scheduleBeat();
    options.logger.info('fleet instance registered', { instanceId: options.instanceId, namespace: options.namespace, mode: options.mode });
  }

  /**
   * Takes ownership of `sessionId` on this instance when nobody live owns it and capacity allows. Idempotent.
   * Waits out a registry quarantine (after Redis lost its data), which lasts at most `quarantineMs`.
   * `labels` and `metadata` replace the recorded ones; omitted, the recorded ones are kept.
   * @throws OwnedElsewhereError, OwnerExpiringError, CapacityError, DrainingError, LeaseLostError, InvalidIdError,
   * ConfigError (bad labels or metadata; nothing written)
   */
  async claim(sessionId: string, options: { labels?: Record<string, string>; metadata?: SessionMetadata } = {}): Promise<Ownership> {
    validateSessionId(sessionId);
    const labels = labelsArg(options);
    const metadata = metadataArg(options, this.#options.maxMetadataBytes);
    this.#assertActive();
    const owned = await this.#withInflight(sessionId, () => this.#claim(sessionId, labels, false, metadata));
    if (options.metadata !== undefined) this.#metadata.set(sessionId, structuredClone(options.metadata));
    return owned;
  }

  async #claim(sessionId: string, labels: string, reassert: boolean, metadata = ''): Promise<Ownership> {
    const force = this.#options.mode === 'observe' ? '1' : '0';
    const waitUntil = performance.now() + this.#options.quarantineMs + this.#options.commandTimeoutMs;
    for (;;) {
      const incarnation = this.#incarnation;
      let reply: lua.ClaimReply;
      try {
        reply = await lua.claim(this.#redis(), this.#keys, {
          instanceId: this.#options.instanceId,
          incarnation,
          sessionId,
          reassert: reassert ? '1' : '0',
          force,
          labels,
          metadata,
        });
      } catch (err) {
        this.#stats.claims.error++;
        throw err;
      }
      if (reply.code === 'OK') {
        this.#stats.claims.ok++;
        const { epoch } = reply;
        if (this.#pastDeadline() || incarnation !== this.#incarnation) {
          // The grant was valid when Redis made it, but this instance fenced meanwhile: take it back later.
          this.#toReclaim.set(sessionId, epoch);
          throw new LeaseLostError('deadline', sessionId);
        }
        this.#own(sessionId, epoch);
        this.#toReclaim.delete(sessionId);
        return { sessionId, epoch, previousOwner: reply.kind === 'held' ? '' : reply.previousOwner };
      }
      if (reply.code === 'QUARANTINE' && performance.now() + reply.retryAfterMs <= waitUntil) {
        await sleep(reply.retryAfterMs + 5);
        continue;
      }
      this.#stats.claims.refused++;
      throw replyError('claim', reply, { sessionId, instanceId: this.#options.instanceId });
    }
  }

  /**
   * Chooses an owner for `sessionId` atomically (least-loaded live instance with capacity and matching labels,
   * sticky to a live previous owner) and assigns it; the chosen instance gets an `assigned` event and starts it.
   * Records the desired state even when nobody has capacity now (`outcome: 'pending'`): the sweep places it later.
   * `labels` and `metadata` replace the recorded ones (omitted: kept); a session with a live owner is left as it is
   * (`outcome: 'existing'`, nothing written). A session that gave up or was stopped runs again.
   * @throws OwnerExpiringError, InvalidIdError, ConfigError (bad labels or metadata; nothing written)
   */
  async place(sessionId: string, options: PlaceOptions = {}): Promise<PlaceResult> {
    validateSessionId(sessionId);
    this.#assertStarted();
    const { quarantineMs, commandTimeoutMs, maxMetadataBytes } = this.#options;
    return placeSession(this.#cmd!.client, this.#keys, sessionId, options, {
      quarantineWaitMs: quarantineMs + commandTimeoutMs,
      maxMetadataBytes,
    });
  }

  /**
   * Stops the session here (through `stopSession`, when given) and releases it with desired state stopped and
   * `reason` (a kind of `STOP_REASON_KINDS`, optionally `: detail`).
   * @throws NotOwnerError, NotFoundError, LeaseLostError, InvalidIdError, ConfigError (bad reason)
   */
  async release(sessionId: string, options: { reason?: string } = {}): Promise<void> {
    validateSessionId(sessionId);
    const reason = checkReason(options.reason ?? stopReason('stopped by request'));
    this.#assertStarted();
    await this.#withInflight(sessionId, async () => {
      if (this.#owned.has(sessionId)) await this.#stopEngine(sessionId, 'release');
      const reply = await this.#release(sessionId, 'stop', reason);
      this.#forget(sessionId);
      this.#toReclaim.delete(sessionId);
      if (reply.code !== 'OK') throw replyError('release', reply, { sessionId });
    });
  }

  /**
   * Stops a session from any instance: one owned here is stopped (through `stopSession`) and released; one that no
   * live instance owns gets desired state stopped (`stopped by request`) and leaves the placement queue, so a
   * pending placement is cancelled and nothing adopts it. Idempotent.
   * @throws OwnedElsewhereError (ask its owner), OwnerExpiringError, NotFoundError, InvalidIdError
   */
  async stop(sessionId: string): Promise<void> {
    validateSessionId(sessionId);
    this.#assertStarted();
    if (this.#owned.has(sessionId)) return this.release(sessionId);
    await stopUnowned(this.#cmd!.client, this.#keys, sessionId, stopReason('stopped by request'));
  }

  /**
   * Runs a session again from any instance: desired state running, placed on the least-loaded instance (or queued),
   * also after it gave up or was stopped. One owned here is stopped (through `stopSession`), released and placed
   * again (sticky: it usually comes back here with a new epoch); with a supervisor prefer
   * `supervisor.restartSession`, which keeps the session here.
   * @throws OwnedElsewhereError (ask its owner), OwnerExpiringError, InvalidIdError, ConfigError
   */
  async restart(sessionId: string, options: Omit<PlaceOptions, 'exclude'> = {}): Promise<PlaceResult> {
    validateSessionId(sessionId);
    this.#assertStarted();
    if (this.#owned.has(sessionId)) await this.release(sessionId);
    const placed = await this.place(sessionId, options);
    if (placed.outcome === 'existing' && placed.owner !== this.#options.instanceId) {
      throw new OwnedElsewhereError(sessionId, placed.owner, placed.epoch, placed.ownerUrl);
    }
    return placed;
  }

  /**
   * Replaces the metadata of a session this instance owns (only the owner may, while its lease is valid). The next
   * start, adoption or handoff hands it to the engine factory; the status webhooks carry it.
   * @throws ConfigError (bad metadata; nothing written), NotOwnerError, LeaseLostError, NotFoundError, InvalidIdError
   */
  async setMetadata(sessionId: string, metadata: SessionMetadata): Promise<void> {
    validateSessionId(sessionId);
    const text = serializeMetadata(metadata, this.#options.maxMetadataBytes);
    this.#assertActive();
    const reply = await lua.setMetadata(this.#redis(), this.#keys, {
      instanceId: this.#options.instanceId,
      incarnation: this.#incarnation,
      sessionId,
      metadata: text,
    });
    if (reply.code === 'OK') {
      this.#metadata.set(sessionId, JSON.parse(text) as SessionMetadata);
      return;
    }
    this.#fenceIfTaken(sessionId, reply.code);
    throw replyError('set-metadata', reply, { sessionId });
  }

  /**
   * Records a session's status (and optionally its desired state) in the registry. Only the owner may, and
   * only while its lease is valid. With `desired: 'stopped'` give the `reason` it waits for a human (a kind of
   * `STOP_REASON_KINDS`, optionally `: detail`); `desired: 'running'` clears the reason.
   * @throws NotOwnerError, LeaseLostError, NotFoundError, InvalidIdError, ConfigError
   */
  async setStatus(
    sessionId: string,
    status: SessionStatus,
    options: { desired?: 'running' | 'stopped'; reason?: string } = {},
  ): Promise<void> {
    validateSessionId(sessionId);
    if (!SESSION_STATUSES.includes(status)) {
      throw new WafleetError('WAFLEET_CONFIG', `Expected status to be one of ${SESSION_STATUSES.join(', ')}, got ${describe(status)}`);
    }
    if (options.desired !== undefined && options.desired !== 'running' && options.desired !== 'stopped') {
      throw new WafleetError('WAFLEET_CONFIG', `Expected desired to be 'running' or 'stopped', got ${describe(options.desired)}`);
    }
    const reason = options.reason === undefined || options.desired !== 'stopped' ? '' : checkReason(options.reason);
    this.#assertActive();
    await this.#announceStatus(sessionId, status);
    const reply = await lua.setStatus(this.#redis(), this.#keys, {
      instanceId: this.#options.instanceId,
      incarnation: this.#incarnation,
      sessionId,
      status,
      desired: options.desired ?? '',
      reason,
    });
    if (reply.code === 'OK') return;
    this.#fenceIfTaken(sessionId, reply.code);
    throw replyError('set-status', reply, { sessionId });
  }

  /**
   * A write refused as NOT_OWNER: another instance took the session, so it is fenced here now. A refused lease
   * (FENCED: expired, replaced, or missing because Redis lost its data) is the whole instance's matter: the heartbeat
   * fences every session, or re-registers and re-asserts them, this one included. Fencing it alone here would forget
   * it, and after a data loss nobody would re-assert it (its record would be gone for good).
   */
  #fenceIfTaken(sessionId: string, code: string): void {
    if (code === 'NOT_OWNER' && this.#owned.has(sessionId)) this.#fence([sessionId], 'taken');
  }

  // ---- session data (the fenced commit protocol; see createSessionData) ----

  /**
   * Announces an upload of `sessionId`'s data under the fresh `uploadId`, before any byte is written. Only the owner
   * may; the returned `epoch` is the fencing token to commit with.
   * @throws LeaseLostError, NotOwnerError, NotFoundError, InvalidIdError, ConfigError (bad upload id)
   */
  async beginSessionData(sessionId: string, uploadId: string): Promise<{ epoch: string; startedAt: number }> {
    validateSessionId(sessionId);
    checkUploadId(uploadId);
    this.#assertStarted();
    // Allowed while draining: a handoff backs the session up before its engine stops.
    if (this.#state === 'fenced' || this.#pastDeadline()) throw new LeaseLostError('deadline', sessionId);
    // Redis decides who owns the session; an epoch this instance does not know is refused there with the owner's.
    const epoch = this.#owned.get(sessionId) ?? '';
    const reply = await lua.dataBegin(this.#redis(), this.#keys, {
      instanceId: this.#options.instanceId,
      incarnation: this.#incarnation,
      sessionId,
      epoch,
      uploadId,
    });
    if (reply.code === 'OK') return { epoch, startedAt: reply.startedAt };
    this.#dataRefused(sessionId, reply);
    throw replyError('data-begin', reply, { sessionId });
  }

  /**
   * Makes an upload the session's current data. The fencing token (this instance, its incarnation, `epoch`) is
   * checked in Redis in the same script as the registry, never here: a commit that arrives after this instance lost
   * the session (a pause, a partition) is refused however valid it looked when the upload began.
   * @throws LeaseLostError, NotOwnerError, NotFoundError, WafleetError `WAFLEET_DATA_UPLOAD_EXPIRED` (collected as
   * garbage), InvalidIdError, ConfigError
   */
  async commitSessionData(sessionId: string, upload: SessionDataUpload): Promise<SessionDataCommit> {
    validateSessionId(sessionId);
    const { epoch, uploadId, size, sha256, uploadTimeoutMs = SESSION_DATA_UPLOAD_TIMEOUT_MS } = upload ?? {};
    checkUploadId(uploadId);
    if (typeof epoch !== 'string' || !/^\d+$/.test(epoch))
      throw new ConfigError('epoch', `Expected \`epoch\` to be a decimal string, got ${describe(epoch)}`);
    if (!Number.isSafeInteger(size) || size < 0)
      throw new ConfigError('size', `Expected \`size\` to be a non-negative integer, got ${describe(size)}`);
    if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) {
      throw new ConfigError('sha256', `Expected \`sha256\` to be 64 lowercase hex digits, got ${describe(sha256)}`);
    }
    if (!Number.isSafeInteger(uploadTimeoutMs) || uploadTimeoutMs <= 0) {
      throw new ConfigError('uploadTimeoutMs', `Expected \`uploadTimeoutMs\` to be a positive integer, got ${describe(uploadTimeoutMs)}`);
    }
    this.#assertStarted();
    const reply = await lua.dataCommit(this.#redis(), this.#keys, {
      instanceId: this.#options.instanceId,
      incarnation: this.#incarnation,
      sessionId,
      epoch,
      uploadId,
      size,
      digest: sha256,
      uploadTimeoutMs,
    });
    if (reply.code === 'OK') {
      const writer = this.#options.instanceId;
      const committed = { sessionId, version: reply.version, uploadId, size, sha256, epoch, writer, committedAt: reply.committedAt };
      return { committed, previousUploadId: reply.previousUploadId, garbage: reply.garbage };
    }
    this.#dataRefused(sessionId, reply);
    throw replyError('data-commit', reply, { sessionId });
  }

  /**
   * The committed version of `sessionId`'s data (what a restore reads), or null when none. One Redis round trip.
   * @throws InvalidIdError, RedisReplyError (a pointer no wafleet version writes)
   */
  async sessionData(sessionId: string): Promise<CommittedVersion | null> {
    validateSessionId(sessionId);
    this.#assertStarted();
    const raw = await this.#redis().hget(this.#keys.data, sessionId);
    if (raw === null) return null;
    return parseCommittedVersion(sessionId, raw);
  }

  /**
   * Removes the pointer to `sessionId`'s data and forgets its pending uploads; the caller removes the bytes named in
   * the result. Only a session without a record or with desired state 'stopped' (logged out, stopped) loses its data.
   * @throws OwnedElsewhereError (the session should run), InvalidIdError
   */
  async dropSessionData(sessionId: string): Promise<SessionDataDrop> {
    validateSessionId(sessionId);
    this.#assertStarted();
    const reply = await lua.dataDrop(this.#redis(), this.#keys, { sessionId });
    if (reply.code === 'OK') return { previousUploadId: reply.previousUploadId, uploads: reply.uploads };
    throw replyError('data-drop', reply, { sessionId });
  }

  /** A data script refused: a session another instance took is fenced here at once, not at the next push. */
  #dataRefused(sessionId: string, reply: { code: string; owner?: string; epoch?: string }): void {
    const mine = this.#owned.get(sessionId);
    if (reply.code !== 'NOT_OWNER' || mine === undefined) return;
    // Ours under a newer epoch (re-claimed): only the upload is stale, not the ownership.
    if (reply.owner === this.#options.instanceId && reply.epoch === mine) return;
    this.#fence([sessionId], 'taken');
  }

  /**
   * Enqueues the status webhooks of a transition before the registry write, so they flow even when Redis is
   * unreachable. Receivers order them by (epoch, seq), so a late one from a former owner is recognisably stale.
   */
  async #announceStatus(sessionId: string, status: SessionStatus): Promise<void> {
    const outbox = this.#options.outbox;
    const previous = this.#statuses.get(sessionId) ?? '';
    const epoch = this.#owned.get(sessionId);
    if (!outbox || previous === status || epoch === undefined) return;
    this.#statuses.set(sessionId, status);
    // Read once per session when nothing here knows it yet (adopted, placed); unreadable Redis must not stop the webhook.
    if (!this.#metadata.has(sessionId)) await this.owner(sessionId).catch(() => undefined);
    const data = { status, previous, metadata: this.#metadata.get(sessionId) ?? {} };
    const events = [{ type: 'session.status', session: sessionId, epoch, data, supersedeGroup: 'session.status' }];
    if (status === 'WORKING')
      events.push({ type: this.#options.readyEventType, session: sessionId, epoch, data, supersedeGroup: 'session.ready' });
    try {
      await outbox.enqueueMany(events);
    } catch (err) {
      this.#options.logger.error('status webhook not enqueued', { sessionId, err });
    }
  }

  /**
   * The registry's record of `sessionId` (owner, liveness, status, desired state, reason, metadata), or null when
   * it has none. One Redis round trip.
   */
  async owner(sessionId: string): Promise<SessionOwner | null> {
    validateSessionId(sessionId);
    this.#assertStarted();
    const found = await lookupOwner(this.#cmd!.client, this.#keys, sessionId);
    if (found && found.owner === this.#options.instanceId && this.#owned.has(sessionId)) {
      this.#metadata.set(sessionId, found.metadata);
    }
    return found;
  }

  /** Every registered instance with its load and capacity. One Redis round trip. */
  async instances(): Promise<InstanceInfo[]> {
    this.#assertStarted();
    return listInstances(this.#cmd!.client, this.#keys);
  }

  /**
   * Stops taking sessions and hands every session off: stop it here, release it, and assign it to another
   * instance at once (no waiting for lease expiry). Idempotent; `close()` calls it.
   */
  drain(): Promise<DrainResult> {
    this.#drainPromise ??= this.#drain();
    return this.#drainPromise;
  }

  async #drain(): Promise<DrainResult> {
    // close() drains too, so only "never started" and "already closed" are refused here.
    if (!this.#cmd || this.#state === 'closed') this.#assertStarted();
    const result: DrainResult = { handedOff: 0, pending: 0, failed: 0, durationsMs: [] };
    if (this.#state === 'active') this.#setState('draining');
    try {
      await lua.setDraining(this.#redis(), this.#keys, {
        instanceId: this.#options.instanceId,
        incarnation: this.#incarnation,
        draining: '1',
      });
    } catch (err) {
      this.#options.logger.warn('could not mark instance draining', { err });
    }
    const queue = [...this.#owned.keys()];
    const worker = async () => {
      for (let sid = queue.shift(); sid !== undefined; sid = queue.shift()) await this.#handoff(sid, result);
    };
    await Promise.all(Array.from({ length: this.#options.handoffConcurrency }, worker));
    this.#options.logger.info('drain finished', { handedOff: result.handedOff, pending: result.pending, failed: result.failed });
    return result;
  }

  async #handoff(sessionId: string, result: DrainResult): Promise<void> {
    const t0 = performance.now();
    try {
      const { outcome } = await this.#handoffOne(sessionId);
      if (outcome === 'handed-off') result.handedOff++;
      else result.pending++;
      result.durationsMs.push(performance.now() - t0);
    } catch (err) {
      result.failed++;
      this.#options.logger.error('handoff failed; the session stays until the lease expires', { sessionId, err });
    }
  }

  /**
   * Hands one session owned here to another instance, as a drain does for all: the engine stops first (through
   * `stopSession`, which saves the login), then the release assigns it to the least-loaded other instance with room
   * (`handed-off`), or queues it for the sweep when none has room now (`pending`; it may come back here). For
   * recycling a browser, rebalancing, or moving a session by hand.
   * @throws NotOwnerError (not owned here), LeaseLostError, InvalidIdError
   */
  async handoff(sessionId: string): Promise<{ outcome: 'handed-off' | 'pending'; owner: string }> {
    validateSessionId(sessionId);
    this.#assertStarted();
    if (!this.#owned.has(sessionId)) throw new NotOwnerError(sessionId, '', '');
    return this.#handoffOne(sessionId);
  }

  #handoffOne(sessionId: string): Promise<{ outcome: 'handed-off' | 'pending'; owner: string }> {
    return this.#withInflight(sessionId, async () => {
      const t0 = performance.now();
      await this.#stopEngine(sessionId, 'handoff');
      const reply = await this.#release(sessionId, 'handoff', '');
      this.#forget(sessionId);
      if (reply.code !== 'OK' && reply.code !== 'PENDING') throw replyError('release', reply, { sessionId });
      this.#stats.handoffs++;
      const outcome = reply.code === 'OK' ? ('handed-off' as const) : ('pending' as const);
      this.emit('handoff', { sessionId, outcome, durationMs: performance.now() - t0 });
      return { outcome, owner: reply.code === 'OK' ? reply.owner : '' };
    });
  }

  /**
   * Drains (managed mode), deregisters and closes the connections wafleet opened. Idempotent. Sessions that
   * could not be stopped keep this instance's lease record and are adopted only after it expires.
   */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    if (this.#startPromise) await this.#startPromise.catch(() => undefined);
    if (this.#state !== 'closed' && this.#cmd) {
      if (this.#options.mode === 'managed') await this.drain().catch(() => undefined);
      this.#clearTimers();
      if (this.#owned.size === 0 || this.#options.mode === 'observe') {
        await lua
          .deregister(this.#redis(), this.#keys, { instanceId: this.#options.instanceId, incarnation: this.#incarnation })
          .catch((err: Error) => this.#options.logger.warn('deregister failed; the lease will expire', { err }));
      }
    }
    this.#clearTimers();
    await this.#closeConnections();
    this.#setState('closed');
    this.emit('closed');
  }

  // ---- heartbeats, fencing and recovery ----

  #scheduleBeat(): void {
    if (this.#state === 'closed' || this.#closePromise) return;
    this.#beatTimer = setTimeout(() => void this.#beat(), this.#options.heartbeatIntervalMs).unref();
  }

  async #beat(): Promise<void> {
    // After a pause the deadline check must come before anything else, including this renewal.
    this.#checkDeadline();
    const sentAt = performance.now();
    if (this.#lastBeatAt > 0) this.#stats.maxHeartbeatGapMs = Math.max(this.#stats.maxHeartbeatGapMs, sentAt - this.#lastBeatAt);
    this.#lastBeatAt = sentAt;
    try {
      const memory = this.#memoryToSend();
      const reply = await lua.heartbeat(this.#hb!.client, this.#keys, {
        instanceId: this.#options.instanceId,
        incarnation: this.#incarnation,
        leaseTtlMs: this.#options.leaseTtlMs,
        memory,
        sweepIntervalMs: this.#options.mode === 'managed' && !this.#closePromise ? this.#options.sweepIntervalMs : 0,
      });
      if (reply.code === 'OK' && memory !== '') this.#memorySent = memory;
      if (reply.code === 'OK') {
        this.#replicas = reply.replicas;
        this.#quarantineUntil = performance.now() + reply.quarantineLeftMs;
        // Starts synchronously (marks the recovery) before the renewal's reconciliation can look at the counts.
        if (reply.era !== this.#era && this.#era !== '') void this.#onNewEra(reply.era);
        this.#onRenewed(sentAt, reply.ownedCount);
        // This renewal claimed the fleet's sweep for this interval.
        if (reply.sweep === 1) void this.#sweep();
      } else await this.#onLeaseLost(reply.reason as FenceReason, reply.era);
    } catch (err) {
      this.#stats.renewalFailures++;
      this.#options.logger.warn('lease renewal failed', { err, selfFenceInMs: Math.round(this.selfFenceInMs) });
    } finally {
      this.#scheduleBeat();
    }
  }

  /** The memory figure for the next heartbeat: '' unless it changed by 1% of the budget or crossed it since last sent. */
  #memoryToSend(): string {
    const budget = this.#options.memoryBudgetBytes;
    if (budget === undefined || this.#memoryUsed === undefined) return '';
    const next = JSON.stringify({ used: this.#memoryUsed, budget });
    if (this.#memorySent === '') return next;
    const { used } = JSON.parse(this.#memorySent) as { used: number };
    const crossed = used >= budget !== this.#memoryUsed >= budget;
    return crossed || Math.abs(used - this.#memoryUsed) >= budget / 100 ? next : '';
  }

  /**
   * Reports the resident memory of this instance's browsers (bytes); the supervisor does after each reading. With
   * `memoryBudgetBytes` it goes to the registry with the next heartbeat (when it changed by 1% of the budget or
   * crossed it), where placement and this instance's claims respect the budget.
   * @throws ConfigError for anything but a non-negative number
   */
  reportMemory(bytes: number): void {
    if (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0) {
      throw new ConfigError('bytes', `Expected the memory to be a non-negative number of bytes, got ${describe(bytes)}`);
    }
    this.#memoryUsed = Math.round(bytes);
  }

  #onRenewed(sentAt: number, remoteCount: number): void {
    this.#stats.renewals++;
    // The send time, not the reply time: Redis may have renewed at any moment in between.
    this.#selfFenceAt = Math.max(this.#selfFenceAt, sentAt + this.#options.selfFenceMs);
    this.#armFenceTimer();
    this.emit('renewed', { selfFenceInMs: this.selfFenceInMs });
    if (this.#state === 'fenced') {
      this.#setState(this.#drainPromise ? 'draining' : 'active');
      this.emit('leaseRestored', { incarnation: this.#incarnation });
    }
    if (this.#toReclaim.size > 0) void this.#reclaim();
    else if (remoteCount !== this.#owned.size && this.#inflight.size === 0) void this.#reconcile();
  }

  #pastDeadline(): boolean {
    return performance.now() >= this.#selfFenceAt;
  }

  #armFenceTimer(): void {
    clearTimeout(this.#fenceTimer);
    const wait = Math.max(0, this.#selfFenceAt - performance.now());
    this.#fenceTimer = setTimeout(() => this.#checkDeadline(), wait + 1).unref();
  }

  #checkDeadline(): void {
    if (this.#state === 'closed' || !this.#pastDeadline()) return;
    if (this.#owned.size > 0 || this.#state === 'active') this.#fence([...this.#owned.keys()], 'deadline', true);
  }

  /** Stops treating sessions as ours and tells the host to stop them; they are re-claimed when possible. */
  #fence(sessionIds: string[], reason: FenceReason, instanceWide = false): void {
    if (this.#options.mode === 'observe') {
      if (instanceWide) this.#options.logger.warn('observe mode: lease lost, not fencing', { reason });
      return;
    }
    for (const sid of sessionIds) {
      const epoch = this.#owned.get(sid);
      this.#forget(sid);
      if (epoch !== undefined && reason !== 'taken') this.#toReclaim.set(sid, epoch);
    }
    this.#stats.fencedSessions += sessionIds.length;
    this.#stats.fencedByReason[reason] += sessionIds.length;
    if (sessionIds.length > 0) this.emit('fenced', { sessionIds, reason });
    if (instanceWide && this.#state !== 'fenced') {
      this.#setState('fenced');
      this.emit('leaseLost', { reason });
    }
    this.#options.logger.warn('sessions fenced', { count: sessionIds.length, reason });
  }

  async #onLeaseLost(reason: FenceReason, era: string): Promise<void> {
    if (this.#recovering) return;
    this.#recovering = true;
    try {
      // Redis lost its data ('missing'), or failed over or restarted to a copy that may lack the newest renewals (a
      // new era, in which this lease may look expired): the registry is in quarantine, nobody else can be granted our
      // sessions, so they keep running while we re-assert them before the self-fence deadline.
      const dataLoss = reason === 'missing' || (era !== this.#era && reason !== 'replaced');
      const keep = dataLoss && !this.#pastDeadline() && this.#options.mode === 'managed' ? [...this.#owned.keys()] : [];
      if (keep.length === 0) this.#fence([...this.#owned.keys()], reason, true);
      this.#incarnation = newIncarnation();
      this.#stats.reRegistrations++;
      await this.#register();
      this.#options.logger.warn('re-registered after lease loss', { reason, kept: keep.length, toReclaim: this.#toReclaim.size });
      if (this.#state === 'fenced') this.#setState(this.#drainPromise ? 'draining' : 'active');
      const lost = await this.#reassert(keep);
      if (dataLoss) {
        this.#stats.newEras++;
        this.emit('era', { era: this.#era, reasserted: keep.length - lost, lost });
      }
      this.emit('leaseRestored', { incarnation: this.#incarnation });
      // Never as a re-assertion, even after Redis lost its data: a session fenced here earlier (a pause past the
      // deadline) may have been adopted since and run elsewhere now. Its claim waits out the quarantine, in which
      // its current owner re-asserts it; without an owner it comes back here. Not awaited: a reclaim that waits
      // for the quarantine must not hold up the handling of the next lease loss.
      void this.#reclaim();
    } catch (err) {
      this.#fail(err as Error);
    } finally {
      this.#recovering = false;
    }
  }

  /** A new era under a valid lease (a failover, or a restart from the files): re-asserts every session run here. */
  async #onNewEra(era: string): Promise<void> {
    if (this.#recovering) return;
    this.#recovering = true;
    try {
      this.#era = era;
      this.#stats.newEras++;
      const sessions = this.#options.mode === 'managed' ? [...this.#owned.keys()] : [];
      this.#options.logger.warn('registry in a new era (Redis failed over or restarted): re-asserting sessions', {
        count: sessions.length,
      });
      const lost = await this.#reassert(sessions);
      this.emit('era', { era, reasserted: sessions.length - lost, lost });
    } finally {
      this.#recovering = false;
    }
  }

  /**
   * Re-asserts sessions that run here after the registry lost data or failed over (claims that the quarantine lets
   * through, whatever the record says). Returns how many could not be: those stop here and are reclaimed.
   */
  async #reassert(sessionIds: string[]): Promise<number> {
    let lost = 0;
    for (const sid of sessionIds) {
      // Fenced meanwhile (the deadline passed during a re-registration): stopped here, so no longer this instance's
      // to re-assert; it is reclaimed like any fenced session.
      if (!this.#owned.has(sid)) continue;
      try {
        const { epoch } = await this.#withInflight(sid, () => this.#claim(sid, '', true));
        this.emit('epoch', { sessionId: sid, epoch });
      } catch (err) {
        // Another owner answers for it now; any other failure (Redis unreachable again) leaves the session with
        // no record but ours, so it stops here and is reclaimed, never forgotten.
        lost++;
        if (this.#owned.has(sid)) this.#fence([sid], ownedByOthers(err) ? 'taken' : 'missing');
      }
    }
    return lost;
  }

  /** Takes back fenced sessions that nobody else took (ordinary claims: never a re-assertion in quarantine). */
  async #reclaim(): Promise<void> {
    for (const [sid] of [...this.#toReclaim]) {
      if (this.#pastDeadline() || this.#drainPromise || this.#closePromise) return;
      this.#toReclaim.delete(sid);
      try {
        const { epoch } = await this.#withInflight(sid, () => this.#claim(sid, '', false));
        this.emit('assigned', { sessionId: sid, epoch, reason: 'reclaimed' });
      } catch (err) {
        const code = (err as WafleetError).code;
        this.#options.logger.info('not reclaimed', { sessionId: sid, code });
        // After Redis lost its data this instance may be the only one that knows the session should run: a reclaim
        // that fails for any reason but another owner is tried again on the next renewal, and a full instance
        // hands the session to placement (which records it even when nobody has room) instead of dropping it.
        if (ownedByOthers(err)) continue;
        if (code === 'WAFLEET_CAPACITY' || code === 'WAFLEET_DRAINING') {
          await this.place(sid).catch((placeErr: Error) => {
            this.#options.logger.warn('fenced session not placed; retrying', { sessionId: sid, err: placeErr });
            this.#toReclaim.set(sid, '');
          });
        } else this.#toReclaim.set(sid, '');
      }
    }
  }

  async #register(): Promise<void> {
    // A new instance record has no memory figure: send it again with the next heartbeat.
    this.#memorySent = '';
    const options = this.#options;
    // Set by the first refusal: the registry's adoption delay (the fleet's largest) may exceed this instance's own.
    let giveUpAt: number | undefined;
    for (;;) {
      const sentAt = performance.now();
      const reply = await lua.register(this.#redis(), this.#keys, {
        instanceId: options.instanceId,
        incarnation: this.#incarnation,
        url: options.url,
        maxSessions: options.maxSessions,
        labels: JSON.stringify(options.labels),
        leaseTtlMs: options.leaseTtlMs,
        adoptionDelayMs: options.adoptionDelayMs,
        mode: options.mode,
        quarantineMs: options.quarantineMs,
        placementRetryMs: options.placementRetryMs,
        placementRetryMaxMs: options.placementRetryMaxMs,
      });
      if (reply.code === 'OK') {
        this.#era = reply.era;
        this.#quarantineUntil = performance.now() + Math.max(0, reply.quarantineUntil - reply.serverMs);
        this.#selfFenceAt = sentAt + options.selfFenceMs;
        this.#armFenceTimer();
        this.emit('renewed', { selfFenceInMs: this.selfFenceInMs });
        return;
      }
      if (reply.code === 'FENCED') {
        this.#incarnation = newIncarnation();
        continue;
      }
      // The previous process with this id (killed, or paused) may still run sessions until its lease expires.
      giveUpAt ??= performance.now() + reply.retryAfterMs + options.commandTimeoutMs;
      if (performance.now() + reply.retryAfterMs <= giveUpAt) {
        await sleep(reply.retryAfterMs + 10);
        continue;
      }
      throw replyError('register', reply, { instanceId: options.instanceId });
    }
  }

  // ---- pushes, reconciliation and sweeps ----

  #onPush(channel: string, message: string): void {
    const push = parsePush(this.#keys, channel, message);
    if (!push || this.#inflight.has(push.sessionId) || this.#state === 'closed') return;
    const sid = push.sessionId;
    const mine = push.owner === this.#options.instanceId && push.incarnation === this.#incarnation;
    if (mine && !this.#owned.has(sid)) {
      if (push.desired !== 'running' || this.#pastDeadline() || this.#state === 'fenced') return;
      this.#own(sid, push.epoch);
      this.emit('assigned', { sessionId: sid, epoch: push.epoch, reason: 'placed' });
    } else if (!mine && this.#owned.has(sid) && push.owner !== '' && push.owner !== this.#options.instanceId) {
      // Another owner took it. A push that only unassigns never stops a session run here under a valid lease: a
      // release is this instance's own, a dead lease was fenced at its deadline, and after a failover an instance's
      // re-registration orphans what the kept records said it held (records older than a handoff), which the
      // instance that runs them re-asserts. Nor does one naming this instance under an earlier incarnation (a write
      // from before a re-registration, or from the old master of a failover): the session is re-asserted.
      this.#fence([sid], 'taken');
    }
  }

  /** Brings the local view in line with the registry after a missed push (count mismatch, reconnect). */
  async #reconcile(): Promise<void> {
    // Not while re-registering after a lease loss: the registry lists the new incarnation's sessions only once they
    // are re-asserted, so every session still to re-assert would look lost and be forgotten (after Redis lost its
    // data, with no record left anywhere). The recovery ends with a renewal, which reconciles if counts differ.
    if ((this.#state !== 'active' && this.#state !== 'draining') || this.#recovering) return;
    // Nor in a quarantine: what the registry lists may be older than what runs here; re-assertion settles it.
    if (performance.now() < this.#quarantineUntil) return;
    const incarnation = this.#incarnation;
    const sentAt = performance.now();
    let reply: lua.OwnedReply;
    try {
      reply = await lua.owned(this.#redis(), this.#keys, {
        instanceId: this.#options.instanceId,
        incarnation,
        limit: this.#options.maxSessions * 2 + 100,
      });
    } catch (err) {
      this.#options.logger.warn('reconcile failed', { err });
      return;
    }
    if (reply.code !== 'OK' || incarnation !== this.#incarnation || this.#pastDeadline() || this.#recovering) return;
    if (reply.era !== this.#era) {
      // Redis failed over or lost data since the last renewal: the list may lack what runs here.
      void this.#onNewEra(reply.era);
      return;
    }
    const remote = new Map<string, string>();
    for (let i = 0; i + 1 < reply.pairs.length; i += 2) remote.set(reply.pairs[i]!, reply.pairs[i + 1]!);
    // Not what was assigned here after the list was read (a push that overtook the reply).
    const lost = [...this.#owned.keys()].filter(
      (sid) => !remote.has(sid) && !this.#inflight.has(sid) && (this.#ownedSince.get(sid) ?? 0) < sentAt,
    );
    if (lost.length > 0) this.#fence(lost, 'taken');
    for (const [sid, epoch] of remote) {
      if (this.#owned.has(sid) || this.#inflight.has(sid) || this.#state !== 'active') continue;
      this.#own(sid, epoch);
      this.emit('assigned', { sessionId: sid, epoch, reason: 'placed' });
    }
  }

  async #sweep(): Promise<void> {
    try {
      if (this.#state !== 'active' && this.#state !== 'draining') return;
      if (this.#pastDeadline()) return;
      const options = this.#options;
      this.#stats.sweeps++;
      const reply = await lua.sweep(this.#redis(), this.#keys, { batch: options.sweepBatch });
      if (reply.code === 'OK') {
        const { placed, orphaned, deferred, instancesRemoved: removed } = reply;
        this.#stats.sweepPlaced += placed;
        if (reply.adoptedAfterMs.length > 0) this.emit('adopted', { delaysMs: reply.adoptedAfterMs.map(Number) });
        if (placed || orphaned || removed) options.logger.info('sweep', { placed, orphaned, deferred, removed });
      }
    } catch (err) {
      this.#options.logger.warn('sweep failed', { err });
    }
  }

  // ---- helpers ----

  #release(sessionId: string, mode: 'stop' | 'handoff', reason: string): Promise<lua.ReleaseReply> {
    return lua.release(this.#redis(), this.#keys, {
      instanceId: this.#options.instanceId,
      incarnation: this.#incarnation,
      sessionId,
      mode,
      reason,
    });
  }

  /** This instance owns the session now (a claim, a push, a reconciliation), since this monotonic time. */
  #own(sessionId: string, epoch: string): void {
    this.#owned.set(sessionId, epoch);
    this.#ownedSince.set(sessionId, performance.now());
  }

  /** This instance no longer owns the session: drop what it knew of it. */
  #forget(sessionId: string): void {
    this.#owned.delete(sessionId);
    this.#ownedSince.delete(sessionId);
    this.#metadata.delete(sessionId);
  }

  /** The command connection (the heartbeat has its own). */
  #redis(): Redis | Cluster {
    if (!this.#cmd) throw new StateError('WAFLEET_NOT_STARTED', 'Call start() first');
    return this.#cmd.client;
  }

  /**
   * Sets how sessions are stopped before release and handoff (the `stopSession` option), for hosts such as the
   * supervisor that exist only after the fleet. `timeoutMs`: how long the fleet waits for it, when the hook keeps a
   * deadline of its own (the supervisor passes its `stopTimeoutMs` plus a margin, so the stop has one owner).
   * @default the fleet's `stopTimeoutMs`
   */
  setStopSession(stop: StopSession, options: { timeoutMs?: number } = {}): void {
    this.#stopSession = stop;
    this.#stopTimeoutMs = options.timeoutMs ?? this.#options.stopTimeoutMs;
  }

  async #stopEngine(sessionId: string, reason: 'release' | 'handoff'): Promise<void> {
    const stop = this.#stopSession;
    if (!stop) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new WafleetError('WAFLEET_LEASE_LOST', `stopSession(${sessionId}) did not finish within stopTimeoutMs`)),
        this.#stopTimeoutMs,
      );
    });
    try {
      await Promise.race([Promise.resolve(stop(sessionId, reason)), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #withInflight<T>(sessionId: string, fn: () => Promise<T>): Promise<T> {
    this.#inflight.set(sessionId, (this.#inflight.get(sessionId) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      const n = (this.#inflight.get(sessionId) ?? 1) - 1;
      if (n <= 0) this.#inflight.delete(sessionId);
      else this.#inflight.set(sessionId, n);
    }
  }

  #assertStarted(): void {
    if (this.#state === 'closed' || this.#closePromise) throw new StateError('WAFLEET_CLOSED', 'This fleet is closed');
    if (this.#state === 'idle' || this.#state === 'starting' || !this.#cmd)
      throw new StateError('WAFLEET_NOT_STARTED', 'Call start() first');
  }

  #assertActive(): void {
    this.#assertStarted();
    if (this.#state === 'draining') throw new WafleetError('WAFLEET_DRAINING', 'This instance is draining');
    if (this.#state === 'fenced' || this.#pastDeadline()) throw new LeaseLostError('deadline');
  }

  #setState(state: FleetState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  #fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#options.logger.error('fleet error', { err });
  }

  #clearTimers(): void {
    clearTimeout(this.#beatTimer);
    clearTimeout(this.#fenceTimer);
  }

  async #closeConnections(): Promise<void> {
    await Promise.all([disconnect(this.#sub), disconnect(this.#hb), disconnect(this.#cmd), disconnect(this.#ack)]);
  }
}
