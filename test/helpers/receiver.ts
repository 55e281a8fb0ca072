import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { freePort } from '@wafleet/test-utils';

export interface Received {
  at: number;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  json: { id: string; type: string; session: string; epoch: string; seq: number; data: Record<string, unknown> };
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  delayMs?: number;
}

/** A real HTTP webhook receiver on loopback that records requests and can go down and up on the same port. */
export interface Receiver {
  readonly url: string;
  readonly received: Received[];
  /** Decides each answer; the request is recorded either way. */
  reply: (r: Received) => Reply;
  up(): Promise<void>;
  down(): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}`,
    received: [],
    reply: () => ({ status: 204 }),
    async up() {
      if (server) return;
      const s = createServer((req: IncomingMessage, res: ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const r: Received = { at: Date.now(), path: req.url ?? '', headers: req.headers, body, json: JSON.parse(body || 'null') };
          receiver.received.push(r);
          const { status, headers, delayMs } = receiver.reply(r);
          setTimeout(() => res.writeHead(status, headers).end(), delayMs ?? 0);
        });
      });
      s.on('connection', (sock) => {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
      });
      await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve));
      server = s;
    },
    async down() {
      const s = server;
      server = undefined;
      if (!s) return;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      for (const sock of sockets) sock.destroy();
      await closed;
    },
    close() {
      return receiver.down();
    },
  };
  await receiver.up();
  return receiver;
}
