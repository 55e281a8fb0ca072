import { createServer } from 'node:net';

const HOST = '127.0.0.1';
/** Redis Cluster listens for its bus on port + 10000, so ports must stay below this. */
const MAX_CLUSTER_PORT = 65535 - 10000;
/**
 * Ports handed out recently by this process. Between closing the probe socket
 * and the caller's server binding it the kernel may offer the same port
 * again, so parallel starts in one process would otherwise collide.
 */
const recentlyIssued = new Map<number, number>();
const REMEMBER_MS = 60_000;

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0,
 * read the port, close). The port is not reserved; callers that bind it must
 * cope with losing the race to another process.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await bindEphemeral();
    if (!wasIssued(port)) return issue(port);
  }
  throw new Error('freePort: could not find an unused port after 50 attempts');
}

/** A free port for a Redis Cluster node together with its cluster bus port. */
export interface FreePortPair {
  /** Client port, always below 55536 so that `port + 10000` is a valid port. */
  port: number;
  /** Cluster bus port, `port + 10000`; also free when returned. */
  busPort: number;
}

/**
 * Returns a port that is free on 127.0.0.1 and whose cluster bus port
 * (`port + 10000`) is free as well, as Redis Cluster nodes need both.
 */
export async function freePortPair(): Promise<FreePortPair> {
  for (let attempt = 0; attempt < 200; attempt++) {
    // The kernel's ephemeral range usually reaches above 55535; when it does
    // not hand out a usable port, fall back to probing random low ports.
    const port = attempt < 100 ? await bindEphemeral() : 20_000 + Math.floor(Math.random() * 35_000);
    const busPort = port + 10_000;
    if (port > MAX_CLUSTER_PORT || wasIssued(port) || wasIssued(busPort)) continue;
    if (attempt >= 100 && !(await canBind(port))) continue;
    if (!(await canBind(busPort))) continue;
    issue(port);
    issue(busPort);
    return { port, busPort };
  }
  throw new Error('freePortPair: could not find a free port whose port+10000 is also free');
}

function bindEphemeral(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: HOST, port: 0, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('freePort: server.address() returned no port'));
      });
    });
  });
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host: HOST, port, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

function wasIssued(port: number): boolean {
  const at = recentlyIssued.get(port);
  if (at === undefined) return false;
  if (Date.now() - at > REMEMBER_MS) {
    recentlyIssued.delete(port);
    return false;
  }
  return true;
}

function issue(port: number): number {
  recentlyIssued.set(port, Date.now());
  return port;
}
