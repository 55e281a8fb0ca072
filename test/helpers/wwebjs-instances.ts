// Instances running the real whatsapp-web.js Client on Debian Chromium (test/fixtures/wwebjs-instance.mjs), offline:
// every host name resolves to a local port that accepts and never answers.
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnProcess, type ChildHandle } from '@wafleet/test-utils';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'wwebjs-instance.mjs');

/** Fast test timing: lease 2 s, adoption 0.5 s after expiry. */
export const FAST_TIMING = { heartbeatIntervalMs: 200, leaseTtlMs: 2000, selfFenceMs: 1400, adoptionDelayMs: 500, quarantineMs: 0 };

export interface WwebjsInstanceConfig {
  redis: string;
  namespace: string;
  instanceId: string;
  auth: 'remote' | 'local';
  dataPath: string;
  holePort: number;
  deadman?: boolean;
  firstBackupMs?: number;
  holdAfterPutMs?: number;
}

export function startWwebjsInstance(config: WwebjsInstanceConfig): ChildHandle {
  return spawnProcess(process.execPath, [FIXTURE, JSON.stringify({ timing: FAST_TIMING, ...config })], { name: config.instanceId });
}

/** A TCP server that accepts and never answers: Chromium's page.goto() to it never settles, the browser stays up. */
export async function blackHole(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** Index of the first message matching `predicate` (the order the instance printed them), -1 when none. */
export function indexOf(child: ChildHandle, predicate: (msg: Record<string, unknown>) => boolean): number {
  return child.messages.findIndex(predicate);
}
