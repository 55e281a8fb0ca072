// Shared by this package's tests in src/: real whatsapp-web.js classes, constructed the way a host would.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import wwebjs from 'whatsapp-web.js';
import type { ClientOptions } from 'whatsapp-web.js';

export const { Client, LocalAuth, RemoteAuth } = wwebjs;
export type Client = InstanceType<typeof Client>;

/** Debian's Chromium; puppeteer never downloads one here. */
export const CHROMIUM = '/usr/bin/chromium';

/** Chromium flags for a machine without network: nothing phones home, nothing needs a GPU or a sandbox. */
export const OFFLINE_CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const dirs: string[] = [];

/** A fresh temporary directory, removed by {@link removeTempDirs}. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A real Client with LocalAuth under `dataPath`, as a host builds it; not initialized. */
export function localClient(clientId: string, dataPath: string, options: Partial<ClientOptions> = {}, extraArgs: string[] = []): Client {
  return new Client({
    authStrategy: new LocalAuth({ clientId, dataPath }),
    puppeteer: { executablePath: CHROMIUM, args: [...OFFLINE_CHROMIUM_ARGS, ...extraArgs] },
    webVersionCache: { type: 'none' },
    ...options,
  });
}
