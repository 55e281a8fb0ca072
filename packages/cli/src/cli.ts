import { parseArgs } from 'node:util';
import {
  forEachSessionRecord,
  listInstances,
  lookupOwner,
  placeSession,
  readFleetCensus,
  registryKeys,
  stopUnowned,
  stopReason,
  validateSessionId,
  type InstanceInfo,
  type RegistryKeys,
} from '@wafleet/protocol';
import Table from 'cli-table3';
import { Redis } from 'ioredis';
import pc from 'picocolors';
import { startDashboard } from './dashboard.js';

/**
 * Exit codes: 0 done (and, for `doctor`, nothing found), 1 the command failed or `doctor` found a problem, 2 bad usage,
 * 3 Redis or an instance could not be reached.
 */
export const EXIT = Object.freeze({ OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3 });

/** Where `main` writes, and the environment it reads (the bin passes the process's). */
export interface CliIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
  env: Record<string, string | undefined>;
}

const USAGE = `Usage: wafleet <command> [options]

Commands:
  status                      instances with load bars against capacity, lease left, draining; fleet totals
  sessions [--status S] [--instance I] [--label k=v]
                              sessions with owner, status, desired state and reason
  owner <session>             the session's owner, URL, epoch, status and liveness
  place <session> [--label k=v]
                              run it on the least-loaded instance with room (or queue it)
  stop <session>              stop it (through its owner when one is live) with desired state stopped
  restart <session>           run it again (through its owner when one is live)
  drain <instance>            hand every session of that instance off (POST /drain on it)
  rebalance [--dry-run]       the fullest instances hand off their excess (POST /rebalance on each)
  doctor                      Redis settings and replication, clock skew, the registry's era and quarantine, expired
                              leases, each instance's sessions against the registry
  outbox dead <instance> [--session S]
                              that instance's dead-lettered webhooks (metadata, no bodies)
  outbox replay <instance> [--session S] [--ids a,b]
                              its dead letters (all, or those of a session or ids) back into delivery
  outbox enable-target <instance> <url>
                              a webhook target it disabled after 410 Gone
  dashboard [--port n]        a live page on 127.0.0.1 (instances, unhealthy sessions, ownership changes; drain and
                              rebalance buttons), opened with the one-time key in the URL it prints; until Ctrl-C

Options:
  --redis <url>               Redis URL (default: $WAFLEET_REDIS_URL, then $REDIS_URL, then redis://127.0.0.1:6379)
  --namespace <ns>            fleet namespace (default: $WAFLEET_NAMESPACE, then "default")
  --token <token>             admin token of the instances' routes (default: $WAFLEET_ADMIN_TOKEN)
  --json                      one JSON document on stdout instead of tables
  --timeout-ms <n>            per Redis command and HTTP request (default 5000)

Exit codes: 0 done, 1 failed or problems found, 2 bad usage, 3 Redis or an instance unreachable.`;

class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

interface Context {
  redis: Redis;
  keys: RegistryKeys;
  token: string | undefined;
  json: boolean;
  timeoutMs: number;
  io: CliIo;
  labels: Record<string, string> | undefined;
  values: Record<string, string | boolean | string[] | undefined>;
}

/** A Redis URL as it may be shown: without its password. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}

function labelsOf(raw: string[] | undefined): Record<string, string> | undefined {
  if (!raw || raw.length === 0) return undefined;
  return Object.fromEntries(
    raw.map((pair) => {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new CliError(`--label expects key=value, got ${JSON.stringify(pair)}`, EXIT.USAGE);
      return [pair.slice(0, eq), pair.slice(eq + 1)];
    }),
  );
}

/** Runs one command; resolves with its exit code. Never throws. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  let redis: Redis | undefined;
  try {
    const parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        redis: { type: 'string' },
        namespace: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean', default: false },
        'timeout-ms': { type: 'string' },
        status: { type: 'string' },
        instance: { type: 'string' },
        label: { type: 'string', multiple: true },
        'dry-run': { type: 'boolean', default: false },
        session: { type: 'string' },
        port: { type: 'string' },
        ids: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    const values = parsed.values as Context['values'];
    const [command, ...args] = parsed.positionals;
    if (values['help'] || command === undefined || command === 'help') {
      io.out.write(`${USAGE}\n`);
      return command === undefined && !values['help'] ? EXIT.USAGE : EXIT.OK;
    }
    const handler = COMMANDS[command];
    if (!handler) throw new CliError(`Unknown command ${JSON.stringify(command)}`, EXIT.USAGE);
    const timeoutMs = Number(values['timeout-ms'] ?? 5000);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new CliError('--timeout-ms expects a positive integer', EXIT.USAGE);
    const url = (values['redis'] as string | undefined) ?? io.env['WAFLEET_REDIS_URL'] ?? io.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
    redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableOfflineQueue: false,
    });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
    } catch (err) {
      throw new CliError(`Redis unreachable at ${shown(url)}: ${(err as Error).message}`, EXIT.UNREACHABLE);
    }
    const ctx: Context = {
      redis,
      keys: registryKeys((values['namespace'] as string | undefined) ?? io.env['WAFLEET_NAMESPACE'] ?? 'default'),
      token: (values['token'] as string | undefined) ?? io.env['WAFLEET_ADMIN_TOKEN'],
      json: values['json'] === true,
      timeoutMs,
      io,
      labels: labelsOf(values['label'] as string[] | undefined),
      values,
    };
    return await handler(ctx, args);
  } catch (err) {
    const code =
      err instanceof CliError
        ? err.exitCode
        : (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
          ? EXIT.USAGE
          : EXIT.FAILED;
    const message = (err as Error).message;
    io.err.write(`wafleet: ${message}\n${code === EXIT.USAGE ? 'Run wafleet --help for the commands and options.\n' : ''}`);
    return (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? EXIT.USAGE : code;
  } finally {
    redis?.disconnect();
  }
}

type Command = (ctx: Context, args: string[]) => Promise<number>;

function emit(ctx: Context, json: unknown, human: () => string): number {
  ctx.io.out.write(ctx.json ? `${JSON.stringify(json, null, 2)}\n` : `${human()}\n`);
  return EXIT.OK;
}

function sessionArg(args: string[], command: string): string {
  const [sid, ...rest] = args;
  if (sid === undefined || rest.length > 0) throw new CliError(`${command} expects one session id`, EXIT.USAGE);
  try {
    return validateSessionId(sid);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.USAGE);
  }
}

function bar(load: number, max: number, width = 20): string {
  const filled = max > 0 ? Math.min(width, Math.round((load / max) * width)) : 0;
  const colour = load >= max ? pc.red : load / Math.max(1, max) >= 0.9 ? pc.yellow : pc.green;
  return colour('█'.repeat(filled)) + pc.dim('·'.repeat(width - filled));
}

async function serverNow(redis: Redis): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** Calls an instance's admin route; an unreachable instance is exit code 3, an error answer exit code 1. */
async function callInstance(ctx: Context, instance: InstanceInfo, method: string, path: string, body?: unknown): Promise<unknown> {
  if (!ctx.token) throw new CliError(`${path} on ${instance.id} needs the admin token: --token or WAFLEET_ADMIN_TOKEN`, EXIT.USAGE);
  let res: Response;
  try {
    res = await fetch(new URL(path, `${instance.url}/`), {
      method,
      headers: { authorization: `Bearer ${ctx.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(ctx.timeoutMs),
      redirect: 'error',
    });
  } catch (err) {
    throw new CliError(`instance ${instance.id} unreachable at ${instance.url}: ${(err as Error).message}`, EXIT.UNREACHABLE);
  }
  const text = await res.text();
  const parsed: unknown = text ? JSON.parse(text) : null;
  if (!res.ok) throw new CliError(`${method} ${path} on ${instance.id} answered ${res.status}: ${text.slice(0, 200)}`, EXIT.FAILED);
  return parsed;
}

async function instanceById(ctx: Context, id: string): Promise<InstanceInfo> {
  const found = (await listInstances(ctx.redis, ctx.keys)).find((i) => i.id === id);
  if (!found) throw new CliError(`no instance ${JSON.stringify(id)} in namespace ${ctx.keys.namespace}`, EXIT.FAILED);
  if (!found.live) throw new CliError(`instance ${id}'s lease has expired: it cannot be called`, EXIT.FAILED);
  return found;
}

const status: Command = async (ctx) => {
  const now = await serverNow(ctx.redis);
  const instances = await listInstances(ctx.redis, ctx.keys);
  const census = await readFleetCensus(ctx.redis, ctx.keys, instances);
  const rows = instances.map((i) => ({
    id: i.id,
    url: i.url,
    load: i.load,
    maxSessions: i.maxSessions,
    live: i.live,
    draining: i.draining,
    mode: i.mode,
    leaseLeftMs: i.leaseDeadline - now,
    ...(i.memory ? { memory: i.memory } : {}),
  }));
  return emit(ctx, { namespace: ctx.keys.namespace, instances: rows, sessions: census }, () => {
    const table = new Table({ head: ['instance', 'load', '', 'lease', 'state', 'url'] });
    for (const r of rows) {
      const state = !r.live ? pc.red('expired') : r.draining ? pc.yellow('draining') : r.mode === 'observe' ? 'observe' : pc.green('live');
      table.push([r.id, `${r.load}/${r.maxSessions}`, bar(r.load, r.maxSessions), `${(r.leaseLeftMs / 1000).toFixed(1)} s`, state, r.url]);
    }
    const s = census.statuses;
    return [
      table.toString(),
      `sessions: ${s.WORKING} working, ${s.STARTING} starting, ${s.SCAN_QR_CODE} waiting for a QR scan, ${s.FAILED} failed, ${s.STOPPED} stopped; ` +
        `${census.ownerless} ownerless, ${census.pending} pending, ${census.stopped} waiting for a human`,
    ].join('\n');
  });
};

interface SessionRow {
  sessionId: string;
  owner: string;
  status: string;
  desired: string;
  reason: string;
  epoch: string;
  labels: Record<string, string>;
}

const sessions: Command = async (ctx) => {
  const rows: SessionRow[] = [];
  await forEachSessionRecord(ctx.redis, ctx.keys, (sessionId, rec) => {
    rows.push({
      sessionId,
      owner: rec.owner ?? '',
      status: rec.status ?? '',
      desired: rec.desired ?? 'running',
      reason: rec.reason ?? '',
      epoch: rec.epoch ?? '0',
      labels: Array.isArray(rec.labels) || rec.labels === undefined ? {} : (rec.labels as Record<string, string>),
    });
  });
  const wanted = rows
    .filter((r) => ctx.values['status'] === undefined || r.status === ctx.values['status'])
    .filter((r) => ctx.values['instance'] === undefined || r.owner === ctx.values['instance'])
    .filter((r) => !ctx.labels || Object.entries(ctx.labels).every(([k, v]) => r.labels[k] === v))
    // The unhealthy first, then by id.
    .sort((a, b) => Number(a.status === 'WORKING') - Number(b.status === 'WORKING') || a.sessionId.localeCompare(b.sessionId));
  return emit(ctx, { sessions: wanted }, () => {
    const table = new Table({ head: ['session', 'owner', 'status', 'desired', 'reason'] });
    for (const r of wanted) table.push([r.sessionId, r.owner || pc.dim('(none)'), colourStatus(r.status), r.desired, r.reason]);
    return `${table.toString()}\n${wanted.length} of ${rows.length} sessions`;
  });
};

function colourStatus(status: string): string {
  return status === 'WORKING' ? pc.green(status) : status === 'FAILED' ? pc.red(status) : pc.yellow(status);
}

const owner: Command = async (ctx, args) => {
  const sid = sessionArg(args, 'owner');
  const found = await lookupOwner(ctx.redis, ctx.keys, sid);
  if (!found) throw new CliError(`no session ${sid} in namespace ${ctx.keys.namespace}`, EXIT.FAILED);
  return emit(ctx, found, () =>
    [
      `${found.sessionId}: ${found.owner ? `${found.owner} at ${found.ownerUrl}` : 'no owner'} (${found.live ? pc.green('live') : pc.red('not live')})`,
      `status ${colourStatus(found.status)}, desired ${found.desired}${found.reason ? ` (${found.reason})` : ''}, epoch ${found.epoch}`,
    ].join('\n'),
  );
};

const place: Command = async (ctx, args) => {
  const sid = sessionArg(args, 'place');
  const placed = await placeSession(ctx.redis, ctx.keys, sid, ctx.labels ? { labels: ctx.labels } : {}, { quarantineWaitMs: 0 });
  return emit(ctx, placed, () =>
    placed.outcome === 'pending'
      ? `${sid}: queued, no instance has room now`
      : `${sid}: ${placed.outcome} on ${placed.owner} (epoch ${placed.epoch})`,
  );
};

/** Runs `path` on the session's live owner, else `unowned()` against the registry. */
async function viaOwner(ctx: Context, sid: string, path: string, unowned: () => Promise<unknown>): Promise<unknown> {
  const found = await lookupOwner(ctx.redis, ctx.keys, sid);
  if (found?.live && found.owner) return callInstance(ctx, await instanceById(ctx, found.owner), 'POST', path);
  return unowned();
}

const stop: Command = async (ctx, args) => {
  const sid = sessionArg(args, 'stop');
  const result = await viaOwner(ctx, sid, `sessions/${sid}/stop`, async () => {
    await stopUnowned(ctx.redis, ctx.keys, sid, stopReason('stopped by request'));
    return { sessionId: sid, stopped: true };
  });
  return emit(ctx, result, () => `${sid}: stopped`);
};

const restart: Command = async (ctx, args) => {
  const sid = sessionArg(args, 'restart');
  const result = await viaOwner(ctx, sid, `sessions/${sid}/restart`, () =>
    placeSession(ctx.redis, ctx.keys, sid, {}, { quarantineWaitMs: 0 }),
  );
  return emit(ctx, result, () => `${sid}: restarted`);
};

const drain: Command = async (ctx, args) => {
  const [id, ...rest] = args;
  if (id === undefined || rest.length > 0) throw new CliError('drain expects one instance id', EXIT.USAGE);
  const result = await callInstance(ctx, await instanceById(ctx, id), 'POST', 'drain');
  return emit(ctx, { instance: id, ...(result as object) }, () => `${id}: draining`);
};

const rebalance: Command = async (ctx) => {
  const dryRun = ctx.values['dry-run'] === true;
  const live = (await listInstances(ctx.redis, ctx.keys)).filter((i) => i.live && !i.draining && i.mode === 'managed');
  // Fullest first: each hands off its own excess to the least loaded.
  const results: Array<{ instance: string } & Record<string, unknown>> = [];
  for (const instance of live.sort((a, b) => b.load - a.load)) {
    const result = (await callInstance(ctx, instance, 'POST', 'rebalance', { dryRun })) as Record<string, unknown>;
    results.push({ instance: instance.id, ...result });
  }
  return emit(ctx, { dryRun, instances: results }, () => {
    const table = new Table({ head: ['instance', 'load', 'target', dryRun ? 'would move' : 'moved'] });
    for (const r of results) {
      const n = dryRun ? (r['planned'] as unknown[]).length : (r['moved'] as unknown[]).length;
      table.push([r.instance, String(r['load']), String(r['target']), String(n)]);
    }
    return table.toString();
  });
};

interface Finding {
  check: string;
  ok: boolean;
  detail: string;
}

const doctor: Command = async (ctx) => {
  const findings: Finding[] = [];
  const config = async (name: string) => {
    try {
      return ((await ctx.redis.config('GET', name)) as string[])[1];
    } catch {
      return undefined; // CONFIG may be renamed or refused by an ACL
    }
  };
  const policy = await config('maxmemory-policy');
  findings.push({
    check: 'maxmemory-policy',
    ok: policy === undefined || policy === 'noeviction',
    detail:
      policy === undefined
        ? 'CONFIG GET refused: check it by hand'
        : `${policy} (wafleet needs noeviction: an evicted lease or record breaks ownership)`,
  });
  const aof = await config('appendonly');
  findings.push({
    check: 'persistence',
    ok: aof === undefined || aof === 'yes',
    detail:
      aof === undefined
        ? 'CONFIG GET refused: check it by hand'
        : `appendonly ${aof} (without it a restart loses every lease and record: quarantine, re-assertion)`,
  });
  const replication = await ctx.redis.info('replication').catch(() => '');
  const replicas = Number(/connected_slaves:(\d+)/.exec(replication)?.[1] ?? 0);
  const minReplicas = await config('min-replicas-to-write');
  findings.push({
    check: 'replication',
    ok: replicas === 0 || minReplicas === undefined || Number(minReplicas) >= 1,
    detail:
      replicas === 0
        ? 'no replica (Sentinel or Cluster failover needs one)'
        : `${replicas} replica(s), min-replicas-to-write ${minReplicas ?? '? (CONFIG GET refused)'}` +
          (Number(minReplicas) >= 1
            ? ''
            : ' (set 1: a master cut off from its replicas then refuses the grants a new master would never see)'),
  });
  const t0 = Date.now();
  const server = await serverNow(ctx.redis);
  const [era, quarantineUntil] = await ctx.redis.hmget(ctx.keys.meta, 'era', 'quarantineUntil');
  const quarantineLeft = Number(quarantineUntil ?? 0) - server;
  findings.push({
    check: 'registry era',
    ok: true,
    detail: `${era ?? 'none yet'}${quarantineLeft > 0 ? `, in quarantine for another ${quarantineLeft} ms (Redis failed over, restarted or lost data: no placement or adoption until then)` : ''}`,
  });
  const skew = server - Math.round((t0 + Date.now()) / 2);
  findings.push({ check: 'clock skew', ok: Math.abs(skew) < 1000, detail: `${skew} ms between this host and Redis` });
  const instances = await listInstances(ctx.redis, ctx.keys);
  const expired = instances.filter((i) => !i.live);
  findings.push({
    check: 'expired leases',
    ok: expired.length === 0,
    detail: expired.length ? expired.map((i) => i.id).join(', ') : 'none',
  });
  // Each live instance's own view against the registry's owned index, like a backend's sync dry run.
  const owned = new Map<string, Set<string>>();
  for (const member of await ctx.redis.zrange(ctx.keys.owned, 0, -1)) {
    const [inst, ...rest] = member.split(':');
    owned.set(inst!, (owned.get(inst!) ?? new Set()).add(rest.join(':')));
  }
  for (const instance of instances.filter((i) => i.live)) {
    if (!ctx.token) {
      findings.push({ check: `${instance.id} sessions`, ok: true, detail: 'skipped: no admin token (--token)' });
      continue;
    }
    try {
      const view = (await callInstance(ctx, instance, 'GET', 'sessions')) as { sessions: Array<{ sessionId: string }> };
      const mine = new Set(view.sessions.map((s) => s.sessionId));
      const registry = owned.get(instance.id) ?? new Set<string>();
      const onlyHere = [...mine].filter((s) => !registry.has(s));
      const onlyThere = [...registry].filter((s) => !mine.has(s));
      findings.push({
        check: `${instance.id} sessions`,
        ok: onlyHere.length === 0 && onlyThere.length === 0,
        detail: `${mine.size} held; not in the registry: ${onlyHere.join(', ') || 'none'}; in the registry only: ${onlyThere.join(', ') || 'none'}`,
      });
    } catch (err) {
      findings.push({ check: `${instance.id} sessions`, ok: false, detail: (err as Error).message });
    }
  }
  const healthy = findings.every((f) => f.ok);
  emit(ctx, { healthy, findings }, () =>
    findings.map((f) => `${f.ok ? pc.green('ok  ') : pc.red('FAIL')} ${f.check}: ${f.detail}`).join('\n'),
  );
  return healthy ? EXIT.OK : EXIT.FAILED;
};

const outbox: Command = async (ctx, args) => {
  const [action, id, ...rest] = args;
  if (!['dead', 'replay', 'enable-target'].includes(action ?? '') || id === undefined)
    throw new CliError('outbox expects dead|replay|enable-target and an instance id', EXIT.USAGE);
  const instance = await instanceById(ctx, id);
  const session = ctx.values['session'] as string | undefined;
  if (action === 'dead') {
    if (rest.length > 0) throw new CliError('outbox dead takes no more arguments', EXIT.USAGE);
    const query = session === undefined ? '' : `?session=${encodeURIComponent(session)}`;
    const { events } = (await callInstance(ctx, instance, 'GET', `outbox/dead${query}`)) as { events: Array<Record<string, unknown>> };
    return emit(ctx, { instance: id, events }, () => {
      const table = new Table({ head: ['event', 'session', 'type', 'attempts', 'why'] });
      for (const e of events)
        table.push([
          String(e['id']),
          String(e['session']),
          String(e['type']),
          String(e['attempts']),
          String(e['deadReason'] || e['lastError']),
        ]);
      return `${table.toString()}
${events.length} dead letters on ${id}`;
    });
  }
  if (action === 'replay') {
    if (rest.length > 0) throw new CliError('outbox replay takes no more arguments', EXIT.USAGE);
    const ids = (ctx.values['ids'] as string | undefined)?.split(',').filter(Boolean);
    // No filter means all of its dead letters (the outbox itself replays nothing for an empty filter).
    const filter = ids || session ? { ...(ids ? { ids } : {}), ...(session ? { session } : {}) } : { from: 0 };
    const result = (await callInstance(ctx, instance, 'POST', 'outbox/replay', filter)) as {
      replayed: number;
    };
    return emit(ctx, { instance: id, ...result }, () => `${id}: ${result.replayed} dead letters back into delivery`);
  }
  const [target, ...more] = rest;
  if (target === undefined || more.length > 0) throw new CliError('outbox enable-target expects the target URL', EXIT.USAGE);
  const result = await callInstance(ctx, instance, 'POST', 'outbox/targets/enable', { target });
  return emit(ctx, { instance: id, ...(result as object) }, () => `${id}: ${target} enabled`);
};

const dashboard: Command = async (ctx) => {
  const port = Number(ctx.values['port'] ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new CliError('--port expects a port number', EXIT.USAGE);
  if (!ctx.token) throw new CliError('the dashboard needs the admin token for its buttons: --token or WAFLEET_ADMIN_TOKEN', EXIT.USAGE);
  const subscriber = ctx.redis.duplicate();
  subscriber.on('error', () => undefined);
  await subscriber.connect();
  const board = await startDashboard(
    {
      redis: ctx.redis,
      subscriber,
      keys: ctx.keys,
      call: (i, method, path, body) => callInstance(ctx, i, method, path, body),
      intervalMs: 1000,
    },
    port,
  );
  ctx.io.out.write(ctx.json ? `${JSON.stringify({ url: board.url })}\n` : `wafleet dashboard: ${board.url}\n`);
  // Serves until the process is told to stop.
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await board.close();
  subscriber.disconnect();
  return EXIT.OK;
};

const COMMANDS: Record<string, Command> = { status, sessions, owner, place, stop, restart, drain, rebalance, doctor, outbox, dashboard };
