import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, spawnProcess, type ChildHandle } from '@wafleet/test-utils';

/** The `wafleet-sim` bin of this checkout. */
export const SIM_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'packages', 'sim', 'bin', 'wafleet-sim.mjs');

/**
 * Starts one `wafleet-sim instance` process with the test timing (heartbeat 200 ms, lease 2 s, self-fence 1.4 s,
 * adoption delay 0.5 s, sweep 200 ms) and `extra` flags; resolves once it printed `ready`.
 */
export async function startSimInstance(
  redisUrl: string,
  namespace: string,
  id: string,
  options: { token: string; maxSessions?: number; extra?: string[] },
): Promise<ChildHandle> {
  const child = spawnProcess(
    process.execPath,
    [
      ...[SIM_BIN, 'instance', '--redis', redisUrl, '--namespace', namespace, '--id', id, '--port', String(await freePort())],
      ...[
        '--max-sessions',
        String(options.maxSessions ?? 10),
        '--heartbeat-ms',
        '200',
        '--lease-ttl-ms',
        '2000',
        '--self-fence-ms',
        '1400',
      ],
      ...['--adoption-delay-ms', '500', '--sweep-ms', '200', ...(options.extra ?? [])],
    ],
    { name: id, env: { WAFLEET_ADMIN_TOKEN: options.token } },
  );
  await child.waitFor((m) => m['ev'] === 'ready', 20_000);
  return child;
}

/** Declares `count` sessions with `wafleet-sim sessions` (placed on the running instances); resolves once placed. */
export async function placeSimSessions(redisUrl: string, namespace: string, count: number, extra: string[] = []): Promise<void> {
  const placer = spawnProcess(
    process.execPath,
    [SIM_BIN, 'sessions', '--redis', redisUrl, '--namespace', namespace, '--count', String(count), ...extra],
    {
      name: 'placer',
    },
  );
  await placer.waitFor((m) => m['ev'] === 'placed', 30_000);
}
