import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listInstances, parsePush, readFleetCensus, type InstanceInfo, type RegistryKeys } from '@wafleet/protocol';
import type { Redis } from 'ioredis';

/** What the dashboard needs from the CLI: Redis, the keys, and a way to call an instance's admin route. */
export interface DashboardDeps {
  redis: Redis;
  /** A second connection for the registry's pub/sub channel (a subscribed connection runs no other command). */
  subscriber: Redis;
  keys: RegistryKeys;
  call(instance: InstanceInfo, method: string, path: string, body?: unknown): Promise<unknown>;
  intervalMs: number;
}

/** One update of the page: instances, fleet totals, the sessions that are not WORKING, recent ownership changes. */
interface Snapshot {
  at: number;
  instances: Array<InstanceInfo & { leaseLeftMs: number; outbox: OutboxView | null }>;
  census: Awaited<ReturnType<typeof readFleetCensus>>;
  unhealthy: Array<{ sessionId: string; owner: string; status: string; desired: string; reason: string }>;
  changes: Array<{ at: number; sessionId: string; owner: string; status: string }>;
}

/** An instance's webhook outbox as `GET /outbox` answers it (null: the instance has none, or did not answer). */
interface OutboxView {
  pending: number;
  dead: number;
  oldestPendingAgeMs: number;
}

const MAX_UNHEALTHY = 50;
const MAX_CHANGES = 20;

/**
 * `wafleet dashboard`: a page served on 127.0.0.1 only, reachable with the random key in the URL it prints (like a
 * notebook server), updating live over server-sent events; its drain and rebalance buttons call the instances' admin
 * routes with the CLI's token. Requests for another Host (DNS rebinding) or from another Origin are refused.
 */
export async function startDashboard(deps: DashboardDeps, port: number): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const key = randomBytes(18).toString('base64url');
  const changes: Snapshot['changes'] = [];
  await deps.subscriber.subscribe(deps.keys.events);
  deps.subscriber.on('message', (channel: string, message: string) => {
    const push = parsePush(deps.keys, channel, message);
    if (!push) return;
    changes.unshift({ at: Date.now(), sessionId: push.sessionId, owner: push.owner, status: push.status });
    changes.length = Math.min(changes.length, MAX_CHANGES);
  });
  const snapshot = async (): Promise<Snapshot> => {
    const [s, us] = await deps.redis.time();
    const now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
    const instances = await listInstances(deps.redis, deps.keys);
    // One pass over the session records: the counts, and the first sessions not WORKING on a live owner.
    const unhealthy: Snapshot['unhealthy'] = [];
    const census = await readFleetCensus(deps.redis, deps.keys, instances, (sessionId, rec, ownerLive) => {
      if ((rec.status === 'WORKING' && ownerLive) || unhealthy.length >= MAX_UNHEALTHY) return;
      unhealthy.push({
        sessionId,
        owner: ownerLive ? (rec.owner ?? '') : '',
        status: rec.status ?? '',
        desired: rec.desired ?? 'running',
        reason: rec.reason ?? '',
      });
    });
    const outboxes = await Promise.all(
      instances.map((i) => (i.live ? (deps.call(i, 'GET', 'outbox') as Promise<OutboxView>).catch(() => null) : Promise.resolve(null))),
    );
    return {
      at: now,
      instances: instances.map((i, n) => ({ ...i, leaseLeftMs: i.leaseDeadline - now, outbox: outboxes[n] ?? null })),
      census,
      unhealthy,
      changes,
    };
  };

  const keyOk = (url: URL) => {
    const given = Buffer.from(url.searchParams.get('key') ?? '');
    const wanted = Buffer.from(key);
    return given.length === wanted.length && timingSafeEqual(given, wanted);
  };
  const streams = new Set<ServerResponse>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const host = req.headers.host ?? '';
      if (!/^(127\.0\.0\.1|localhost):\d+$/.test(host) || !keyOk(url)) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden');
        return;
      }
      if (req.method === 'GET' && url.pathname === '/') {
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
        });
        res.end(PAGE);
        return;
      }
      if (req.method === 'GET' && url.pathname === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        streams.add(res);
        req.on('close', () => streams.delete(res));
        res.write(`data: ${JSON.stringify(await snapshot())}\n\n`);
        return;
      }
      if (req.method === 'POST' && (url.pathname === '/drain' || url.pathname === '/rebalance')) {
        const origin = req.headers.origin;
        if (origin !== undefined && origin !== `http://${host}`) {
          res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden origin');
          return;
        }
        try {
          const instances = await listInstances(deps.redis, deps.keys);
          let result: unknown;
          if (url.pathname === '/drain') {
            const target = instances.find((i) => i.id === url.searchParams.get('instance') && i.live);
            if (!target) throw new Error('no such live instance');
            result = await deps.call(target, 'POST', 'drain');
          } else {
            const live = instances.filter((i) => i.live && !i.draining && i.mode === 'managed').sort((a, b) => b.load - a.load);
            const moved: unknown[] = [];
            for (const instance of live)
              moved.push({ instance: instance.id, ...((await deps.call(instance, 'POST', 'rebalance', {})) as object) });
            result = { instances: moved };
          }
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result));
        } catch (err) {
          res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (err as Error).message }));
        }
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  const timer = setInterval(() => {
    if (streams.size === 0) return;
    void snapshot()
      .then((snap) => {
        const line = `data: ${JSON.stringify(snap)}\n\n`;
        for (const res of streams) res.write(line);
      })
      .catch(() => undefined);
  }, deps.intervalMs);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  return {
    url: `http://127.0.0.1:${actual}/?key=${key}`,
    server,
    close: async () => {
      clearInterval(timer);
      for (const res of streams) res.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wafleet</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5rem;background:#0f1419;color:#e6e6e6}
h1{font-size:1.3rem;margin:0 0 1rem} h2{font-size:1rem;margin:1.5rem 0 .5rem;color:#9fb3c8}
table{border-collapse:collapse;width:100%} td,th{padding:.3rem .6rem;text-align:left;border-bottom:1px solid #243040}
.bar{display:inline-block;width:160px;height:10px;background:#243040;border-radius:3px;vertical-align:middle}
.fill{height:10px;border-radius:3px;background:#3fb950} .hot{background:#d29922} .full{background:#f85149}
.expired{color:#f85149} .draining{color:#d29922} .live{color:#3fb950}
button{background:#243040;color:#e6e6e6;border:1px solid #3b4b61;border-radius:4px;padding:.2rem .6rem;cursor:pointer}
#totals span{margin-right:1.2rem} #result{margin-left:1rem;color:#9fb3c8}
</style></head><body>
<h1>wafleet <span id="updated" style="font-size:.8rem;color:#9fb3c8"></span></h1>
<div id="totals"></div>
<h2>Instances <button id="rebalance">Rebalance</button><span id="result"></span></h2>
<table id="instances"><thead><tr><th>instance</th><th>load</th><th></th><th>lease</th><th>state</th><th>webhooks pending</th><th>oldest</th><th>dead letters</th><th></th></tr></thead><tbody></tbody></table>
<h2>Sessions not working</h2>
<table id="unhealthy"><thead><tr><th>session</th><th>owner</th><th>status</th><th>desired</th><th>reason</th></tr></thead><tbody></tbody></table>
<h2>Recent ownership changes</h2>
<table id="changes"><thead><tr><th>time</th><th>session</th><th>owner</th><th>status</th></tr></thead><tbody></tbody></table>
<script>
const key = new URLSearchParams(location.search).get('key');
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
const rows = (id, html) => { document.querySelector('#' + id + ' tbody').innerHTML = html; };
async function post(path) {
  const res = await fetch(path + (path.includes('?') ? '&' : '?') + 'key=' + encodeURIComponent(key), { method: 'POST' });
  const body = await res.json();
  document.getElementById('result').textContent = res.ok ? (path.startsWith('/rebalance')
    ? 'moved ' + body.instances.reduce((n, i) => n + i.moved.length, 0) + ' sessions' : 'draining') : 'failed: ' + body.error;
}
document.getElementById('rebalance').onclick = () => post('/rebalance');
// An instance that vanished from the registry (reaped after its lease expired) stays on the page as gone.
const known = new Map();
function render(s) {
  for (const i of s.instances) known.set(i.id, i);
  for (const [id, i] of known) if (!s.instances.some((x) => x.id === id)) s.instances.push({ ...i, load: 0, live: false, gone: true, leaseLeftMs: NaN });
  document.getElementById('updated').textContent = 'updated ' + new Date(s.at).toLocaleTimeString();
  const c = s.census, st = c.statuses;
  document.getElementById('totals').innerHTML = [
    ['working', st.WORKING], ['starting', st.STARTING], ['QR scan', st.SCAN_QR_CODE], ['failed', st.FAILED],
    ['ownerless', c.ownerless], ['pending', c.pending], ['capacity', c.load + '/' + c.capacity]
  ].map(([k, v]) => '<span>' + esc(k) + ': <b data-total="' + esc(k) + '">' + esc(v) + '</b></span>').join('');
  rows('instances', s.instances.sort((a, b) => a.id.localeCompare(b.id)).map((i) => {
    const ratio = i.maxSessions ? i.load / i.maxSessions : 0;
    const state = i.gone ? 'gone' : !i.live ? 'expired' : i.draining ? 'draining' : 'live';
    return '<tr data-instance="' + esc(i.id) + '"><td>' + esc(i.id) + '</td><td class="load">' + i.load + '/' + i.maxSessions + '</td>'
      + '<td><span class="bar"><div class="fill ' + (ratio >= 1 ? 'full' : ratio >= .9 ? 'hot' : '') + '" style="width:' + Math.min(100, ratio * 100) + '%"></div></span></td>'
      + '<td>' + (i.gone ? '' : (i.leaseLeftMs / 1000).toFixed(1) + ' s') + '</td><td class="state ' + (i.gone ? 'expired' : state) + '">' + state + '</td>'
      + (i.outbox ? '<td class="pending">' + i.outbox.pending + '</td><td>' + (i.outbox.pending ? (i.outbox.oldestPendingAgeMs / 1000).toFixed(0) + ' s' : '') + '</td><td class="dead' + (i.outbox.dead ? ' expired' : '') + '">' + i.outbox.dead + '</td>' : '<td></td><td></td><td></td>')
      + '<td>' + (i.live && !i.draining ? '<button data-drain="' + esc(i.id) + '">Drain</button>' : '') + '</td></tr>';
  }).join(''));
  document.querySelectorAll('[data-drain]').forEach((b) => { b.onclick = () => post('/drain?instance=' + encodeURIComponent(b.dataset.drain)); });
  rows('unhealthy', s.unhealthy.map((u) => '<tr><td>' + esc(u.sessionId) + '</td><td>' + esc(u.owner || '(none)') + '</td><td>' + esc(u.status) + '</td><td>' + esc(u.desired) + '</td><td>' + esc(u.reason) + '</td></tr>').join(''));
  rows('changes', s.changes.map((x) => '<tr><td>' + new Date(x.at).toLocaleTimeString() + '</td><td>' + esc(x.sessionId) + '</td><td>' + esc(x.owner || '(none)') + '</td><td>' + esc(x.status) + '</td></tr>').join(''));
}
const source = new EventSource('/events?key=' + encodeURIComponent(key));
source.onmessage = (e) => render(JSON.parse(e.data));
</script></body></html>
`;
