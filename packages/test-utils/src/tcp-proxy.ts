import { createServer, connect, type Socket } from 'node:net';
import { freePort } from './free-port.js';

/** A loopback TCP proxy from {@link startTcpProxy}. */
export interface TcpProxyHandle {
  /** The port clients connect to. */
  readonly port: number;
  /**
   * Stops forwarding in both directions (only on connections whose first bytes from the client match `only`, when
   * given): bytes wait in the proxy, connections stay open.
   */
  pause(only?: RegExp): void;
  /** Forwards again, what waited first. */
  resume(): void;
  /** Closes the proxy and every connection; what waited is dropped. Idempotent. */
  close(): Promise<void>;
}

interface Link {
  sockets: [Socket, Socket];
  /** The first bytes the client sent (up to 1 KiB): what `pause(only)` matches. */
  preamble: string;
  /** Chunks held while paused, with the socket each goes to, in arrival order. */
  held: Array<[Socket, Buffer]>;
}

/**
 * Forwards 127.0.0.1:<port> to 127.0.0.1:`targetPort`. Paused, it holds what either side sends, so a Redis replica
 * connected through it stays "connected" while it misses its master's writes: replication paused, as on a congested
 * link, and lost for good when the master dies before the proxy resumes.
 */
export async function startTcpProxy(targetPort: number): Promise<TcpProxyHandle> {
  const port = await freePort();
  const links = new Set<Link>();
  let paused = false;
  let only: RegExp | undefined;
  const holds = (link: Link) => paused && (!only || only.test(link.preamble));
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    const link: Link = { sockets: [client, upstream], preamble: '', held: [] };
    client.on('data', (chunk: Buffer) => {
      if (link.preamble.length < 1024) link.preamble += chunk.toString('latin1', 0, 1024 - link.preamble.length);
    });
    links.add(link);
    const drop = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk: Buffer) => {
        if (holds(link) || link.held.length > 0) link.held.push([to, chunk]);
        else to.write(chunk);
      });
    forward(client, upstream).on('error', drop).on('close', drop);
    forward(upstream, client).on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  return {
    port,
    pause(match?: RegExp) {
      paused = true;
      only = match;
    },
    resume() {
      paused = false;
      only = undefined;
      for (const link of links) for (const [to, chunk] of link.held.splice(0)) to.write(chunk);
    },
    async close() {
      for (const link of [...links]) for (const s of link.sockets) s.destroy();
      links.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
