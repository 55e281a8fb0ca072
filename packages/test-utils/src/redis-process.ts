import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { sleep } from './sleep.js';
import { hasExited, signalProcess, trackProcess, waitForExit, type TrackedProcess } from './process-registry.js';
import type { TestCertificates } from './test-certificates.js';

/** How clients must talk to a private redis-server: the default user's password and TLS. */
export interface RedisSecurity {
  /** `requirepass` of the default user. */
  password?: string;
  /** Serve TLS only (`--port 0 --tls-port PORT`) with these certificates; clients are not asked for one. */
  tls?: TestCertificates;
}

/** Where a private redis-server lives and how it persists. */
export interface RedisLayout {
  port: number;
  /** Working directory (`--dir`): RDB/AOF files and the cluster config live here. */
  dataDir: string;
  logFile: string;
  appendonly: boolean;
  security?: RedisSecurity;
}

/**
 * Command line shared by standalone and cluster nodes. Persistence is off by
 * default so a kill loses everything, which is what crash tests expect;
 * `noeviction` makes memory pressure an error instead of silently dropping
 * registry keys.
 */
export function redisArgs(layout: RedisLayout, extra: readonly string[] = []): string[] {
  const { password, tls } = layout.security ?? {};
  const listen = tls
    ? ['--port', '0', '--tls-port', String(layout.port), '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile]
    : ['--port', String(layout.port)];
  return [
    ...listen,
    ...(tls ? ['--tls-ca-cert-file', tls.caFile, '--tls-auth-clients', 'no'] : []),
    ...(password === undefined ? [] : ['--requirepass', password]),
    '--bind',
    '127.0.0.1',
    '--dir',
    layout.dataDir,
    '--logfile',
    layout.logFile,
    '--save',
    '',
    '--appendonly',
    layout.appendonly ? 'yes' : 'no',
    ...(layout.appendonly ? ['--appendfsync', 'always'] : []),
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
    '--protected-mode',
    'no',
    ...extra,
  ];
}

/** A redis-server that failed to come up; `addressInUse` means retrying may help. */
export class RedisStartError extends Error {
  override readonly name = 'RedisStartError';
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
  }
}

/**
 * Spawns redis-server and resolves once it answers PING with PONG *and*
 * reports our child's pid: a bare PONG could come from some other server
 * that grabbed the port while ours failed to bind.
 *
 * @throws RedisStartError (with the log tail) if it exits early or is not
 *   ready within `timeoutMs`; the process is killed in the latter case.
 */
export async function launchRedis(
  binary: string,
  layout: RedisLayout,
  args: readonly string[],
  timeoutMs = 10_000,
): Promise<TrackedProcess> {
  const child = spawn(binary, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const tracked = trackProcess(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    if (output.length < 64 * 1024) output += chunk.toString('utf8');
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  // A forgotten server must not keep the test runner alive; the exit hook
  // in process-registry kills it when the process ends.
  child.unref();
  (child.stdout as { unref?: () => void } | null)?.unref?.();
  (child.stderr as { unref?: () => void } | null)?.unref?.();

  const describe = (what: string): string => {
    const tail = logTail(layout.logFile);
    const out = output.trim();
    return [
      `redis-server on 127.0.0.1:${layout.port} ${what}`,
      `command: ${binary} ${args.map((a) => (a === '' ? '""' : a)).join(' ')}`,
      out ? `output:\n${out}` : '',
      tail ? `log tail (${layout.logFile}):\n${tail}` : `no log at ${layout.logFile}`,
    ]
      .filter(Boolean)
      .join('\n');
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (spawnError) throw new RedisStartError(describe(`could not be spawned: ${spawnError.message}`), false);
    if (hasExited(child)) {
      const why = `exited (code ${child.exitCode}, signal ${child.signalCode}) before answering PING`;
      const text = describe(why);
      throw new RedisStartError(text, /address already in use/i.test(text));
    }
    const probe = await probeRedis(layout.port, 500, layout.security);
    if (probe.pong && probe.pid === child.pid) return tracked;
    if (Date.now() > deadline) {
      signalProcess(tracked, 'SIGKILL');
      await waitForExit(child, 5_000);
      throw new RedisStartError(describe(`did not answer PING within ${timeoutMs} ms`), false);
    }
    await sleep(50);
  }
}

/** Last `lines` lines of a log file, or '' if it cannot be read. */
export function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

interface Probe {
  pong: boolean;
  pid?: number;
}

/** A RESP command, so a password with spaces or CRLF reaches Redis intact. */
const resp = (...args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

/**
 * One raw-socket round trip of `PING` + `INFO server` (after `AUTH` when a
 * password is set; over TLS when asked, without checking the certificate).
 * A raw socket instead of ioredis keeps startup free of client reconnect
 * logic and error events.
 */
function probeRedis(port: number, timeoutMs: number, security: RedisSecurity = {}): Promise<Probe> {
  return new Promise((resolve) => {
    let buffer = '';
    let settled = false;
    let authed = security.password === undefined;
    const socket: Socket = security.tls
      ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false })
      : createConnection({ host: '127.0.0.1', port });
    const finish = (probe: Probe): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(probe);
    };
    socket.setTimeout(timeoutMs, () => finish({ pong: false }));
    socket.on('error', () => finish({ pong: false }));
    socket.on('close', () => finish({ pong: false }));
    const auth = security.password === undefined ? '' : resp('AUTH', security.password);
    socket.on(security.tls ? 'secureConnect' : 'connect', () => socket.write(`${auth}PING\r\nINFO server\r\n`));
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      if (!authed) {
        const end = buffer.indexOf('\r\n');
        if (end < 0) return;
        if (!buffer.startsWith('+OK')) return finish({ pong: false });
        buffer = buffer.slice(end + 2);
        authed = true;
      }
      const firstEnd = buffer.indexOf('\r\n');
      if (firstEnd < 0) return;
      // -LOADING while an AOF is replayed: not ready yet.
      if (!buffer.startsWith('+PONG')) return finish({ pong: false });
      const rest = buffer.slice(firstEnd + 2);
      const headerEnd = rest.indexOf('\r\n');
      if (headerEnd < 0) return;
      if (!rest.startsWith('$')) return finish({ pong: true });
      const length = Number(rest.slice(1, headerEnd));
      const body = rest.slice(headerEnd + 2);
      if (body.length < length) return;
      const match = /^process_id:(\d+)/m.exec(body.slice(0, length));
      finish({ pong: true, pid: match ? Number(match[1]) : undefined });
    });
  });
}
