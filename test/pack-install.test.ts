// The packed tarballs as a user installs them: packed by scripts/pack.mjs, installed with npm (not pnpm, not the
// workspace) into empty directories, and used from CommonJS and ES module hosts against a private Redis.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, startRedis, type RedisServerHandle } from '@wafleet/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = join(root, 'test', 'fixtures', 'pack-install');
/** The whatsapp-web.js a service pinned before @wafleet/wwebjs widened its peer range (it brings puppeteer 18). */
const PINNED_WWEBJS = '1.33.2';

interface Packed {
  name: string;
  version: string;
  tarball: string;
  entries: string[];
}

/** Private: the README examples use the default namespace. */
let redis: RedisServerHandle;
let work: string;
let packed: Packed[];
/** protocol, core, client and wwebjs with whatsapp-web.js 1.33.2, and the consumers. */
let host: string;
/** protocol and client only. */
let backend: string;
const timings: Record<string, number> = {};
/** README examples still serving, killed after the tests if one fails before stopping them. */
const services = new Set<ChildProcess>();

async function timed<T>(label: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    timings[label] = Math.round(performance.now() - started);
  }
}

function tarball(name: string): string {
  const found = packed.find((p) => p.name === name);
  if (!found) throw new Error(`${name} was not packed`);
  return found.tarball;
}

/** The environment of a user's shell: none of the npm_* variables the runner (pnpm, vitest) set for itself. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))), ...extra };
}

/**
 * better-sqlite3 has no prebuilt binary without internet (prebuild-install downloads from GitHub) and compiles from
 * source for 1.5-2 minutes on 2 cores. prebuild-install's offline mechanism, a local prebuilds directory, is given the
 * binary the workspace compiled from the same version, so npm runs the real install script without the compile.
 */
async function localPrebuilds(): Promise<string> {
  const pkg = createRequire(join(root, 'packages', 'core', 'package.json')).resolve('better-sqlite3/package.json');
  const { version } = JSON.parse(readFileSync(pkg, 'utf8')) as { version: string };
  const dir = join(work, 'prebuilds');
  mkdirSync(dir);
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  await run('tar', ['-czf', join(dir, name), '-C', dirname(pkg), 'build/Release/better_sqlite3.node']);
  return dir;
}

async function npmInstall(dir: string, specs: string[], env: NodeJS.ProcessEnv): Promise<void> {
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...specs], { cwd: dir, env, maxBuffer: 1 << 24 });
}

/** Every file under `dir`, relative to it. */
function walk(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(dir, join(prefix, e.name)) : [join(prefix, e.name)],
  );
}

/** The usage example of a package's README, after its install line, written into the host as readme-<name>.mjs. */
function readmeExample(name: string): string {
  const readme = readFileSync(join(root, 'packages', name, 'README.md'), 'utf8');
  const fence = '```';
  const example = new RegExp(`^${fence}js\\n([^]*?)^${fence}$`, 'm').exec(readme);
  if (!readme.startsWith(`# @wafleet/${name}\n\n${fence}sh\nnpm install @wafleet/${name}`) || !example) {
    throw new Error(`packages/${name}/README.md does not open with its install line and a js example`);
  }
  const file = join(host, `readme-${name}.mjs`);
  writeFileSync(file, example[1]!);
  return file;
}

/** Runs a README example that serves until SIGTERM: resolves once it printed `ready`, with a stop() giving its exit. */
async function service(file: string, ready: string, env: NodeJS.ProcessEnv): Promise<{ stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [file], { cwd: host, env, stdio: ['ignore', 'pipe', 'inherit'] });
  services.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => services.delete(child));
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(ready)) resolve();
    });
    void exited.then((code) => reject(new Error(`${file} exited ${code} before printing "${ready}": ${output}`)));
  });
  return { stop: () => (child.kill('SIGTERM'), exited) };
}

beforeAll(async () => {
  redis = await startRedis();
  work = mkdtempSync(join(os.tmpdir(), 'wafleet-pack-'));
  const out = join(work, 'tarballs');
  const { stdout } = await timed('pack', () =>
    run(process.execPath, [join(root, 'scripts', 'pack.mjs'), '--out', out, '--json'], { cwd: root }),
  );
  packed = JSON.parse(stdout) as Packed[];
  host = mkdtempSync(join(work, 'host-'));
  backend = mkdtempSync(join(work, 'backend-'));
  for (const dir of [host, backend]) writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  const prebuilds = await localPrebuilds();
  writeFileSync(join(host, '.prebuild-installrc'), `local-prebuilds=${prebuilds}\n`);
  for (const file of readdirSync(fixtures)) copyFileSync(join(fixtures, file), join(host, file));
  const hostPackages = ['@wafleet/protocol', '@wafleet/core', '@wafleet/client', '@wafleet/wwebjs'].map(tarball);
  await Promise.all([
    // Puppeteer (whatsapp-web.js's dependency) downloads a browser at install unless told not to: see docs/packaging.md.
    timed('npm install host', () =>
      npmInstall(host, [...hostPackages, `whatsapp-web.js@${PINNED_WWEBJS}`], userEnv({ PUPPETEER_SKIP_DOWNLOAD: '1' })),
    ),
    timed('npm install backend', () => npmInstall(backend, ['@wafleet/protocol', '@wafleet/client'].map(tarball), userEnv())),
  ]);
}, 300_000);

afterAll(async () => {
  console.log(`pack-install timings (ms): ${JSON.stringify(timings)}`);
  for (const child of services) child.kill('SIGKILL');
  await redis?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('packed tarballs installed with npm', () => {
  it('packs every public package without workspace: ranges, src/ or test files', async () => {
    expect(packed.map((p) => p.name).sort()).toEqual([
      '@wafleet/cli',
      '@wafleet/client',
      '@wafleet/core',
      '@wafleet/protocol',
      '@wafleet/sim',
      '@wafleet/wwebjs',
    ]);
    for (const p of packed) {
      const manifest = (await run('tar', ['-xOzf', p.tarball, 'package/package.json'])).stdout;
      expect(manifest, p.name).not.toContain('workspace:');
      expect(manifest, p.name).not.toContain('@wafleet/test-utils');
      expect(
        p.entries.filter((e) => e.startsWith('package/src/') || e.includes('.test.')),
        p.name,
      ).toEqual([]);
    }
  });

  it('the packed CLI installs alone in an empty directory, and its wafleet bin reads the fleet', async () => {
    const dir = mkdtempSync(join(work, 'cli-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'ops', private: true }));
    await timed('npm install cli', () => npmInstall(dir, [tarball('@wafleet/protocol'), tarball('@wafleet/cli')], userEnv()));
    // No native module and no core: what an operator's laptop installs.
    expect(existsSync(join(dir, 'node_modules', 'better-sqlite3'))).toBe(false);
    const bin = join(dir, 'node_modules', '.bin', 'wafleet');
    const { stdout } = await run(bin, ['status', '--json', '--redis', redis.url, '--namespace', 'cli-pack'], { cwd: dir, env: userEnv() });
    expect(JSON.parse(stdout)).toMatchObject({ namespace: 'cli-pack', instances: [], sessions: { statuses: { WORKING: 0 } } });
    const down = await run(bin, ['status', '--redis', 'redis://127.0.0.1:1'], { cwd: dir, env: userEnv() }).then(
      () => 0,
      (err: { code: number }) => err.code,
    );
    expect(down).toBe(3);
  });

  it.each(['consumer.cjs', 'consumer.mjs'])(
    '%s places a session with core, finds its owner with the client, and guards without express or prom-client',
    async (consumer) => {
      const { stdout } = await timed(consumer, () =>
        run(process.execPath, [join(host, consumer), redis.url], { cwd: host, env: userEnv() }),
      );
      expect(JSON.parse(stdout)).toEqual({
        placed: 'assigned',
        owner: { owner: 'wa-1', ownerUrl: 'http://127.0.0.1:3000', live: true, sameEpoch: true },
        oneProtocol: true,
        guard: 'function',
        idempotency: 'function',
        router: { code: 'WAFLEET_CONFIG', option: 'express' },
        // The owner's save is version 1; a non-owner's is refused at commit and resolves (RemoteAuth does not catch).
        fencedSave: [1, null],
        sqlite: { seq: 1, pending: 1, commits: 1 },
      });
    },
  );

  it('keeps the whatsapp-web.js (and puppeteer) the service pinned', () => {
    const version = (name: string) =>
      (JSON.parse(readFileSync(join(host, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    expect(version('whatsapp-web.js')).toBe(PINNED_WWEBJS);
    expect(version('puppeteer')).toMatch(/^18\./);
  });

  it('require() on a Node that cannot require() ES modules fails with WAFLEET_NODE_VERSION, naming the fix', async () => {
    const script = "try { require('@wafleet/client') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }";
    const { stdout } = await run(process.execPath, ['--no-experimental-require-module', '-e', script], { cwd: host, env: userEnv() });
    const { code, message } = JSON.parse(stdout) as { code: string; message: string };
    expect(code).toBe('WAFLEET_NODE_VERSION');
    expect(message).toContain('Node >= 20.19');
    expect(message).toContain("import('@wafleet/client')");
  });

  it('installs @wafleet/client without any native module, better-sqlite3, p-retry or @wafleet/core', () => {
    const files = walk(join(backend, 'node_modules'));
    const native = files.filter(
      (f) =>
        f.endsWith('.node') ||
        f.endsWith('binding.gyp') ||
        (f.endsWith('package.json') &&
          (JSON.parse(readFileSync(join(backend, 'node_modules', f), 'utf8')) as { gypfile?: boolean }).gypfile === true),
    );
    expect(native).toEqual([]);
    const installed = (name: string) => files.some((f) => f === `${name}/package.json` || f.endsWith(`/node_modules/${name}/package.json`));
    for (const name of ['better-sqlite3', 'p-retry', '@wafleet/core']) expect(installed(name), name).toBe(false);
    expect(installed('@wafleet/client')).toBe(true);
  });

  it('installs @wafleet/sim beside them, which brings express and prom-client: then the router builds', async () => {
    await timed('npm install sim', () => npmInstall(host, [tarball('@wafleet/sim')], userEnv({ PUPPETEER_SKIP_DOWNLOAD: '1' })));
    const script = [
      "const { createFleet } = require('@wafleet/core');",
      "const { createFleetRouter } = require('@wafleet/core/express');",
      "const fleet = createFleet({ redis: process.argv[1], instanceId: 'wa-1', url: 'http://127.0.0.1:3000', maxSessions: 1 });",
      "const kinds = [typeof require('@wafleet/sim').createSimEngine, typeof createFleetRouter(fleet, { auth: 'none' })];",
      'fleet.close().then(() => console.log(JSON.stringify(kinds)));',
    ].join('\n');
    const { stdout } = await run(process.execPath, ['-e', script, redis.url], { cwd: host, env: userEnv() });
    expect(JSON.parse(stdout)).toEqual(['function', 'function']);
  });

  it('every README opens with its install line and an example that runs against the installed packages', async () => {
    const env = userEnv({
      REDIS_URL: redis.url,
      PORT: String(await freePort()),
      WAFLEET_ADMIN_TOKEN: 'readme-example-admin-token-0123456789',
    });
    const node = async (file: string) => (await run(process.execPath, [file], { cwd: host, env })).stdout;
    writeFileSync(
      join(host, 'my-store.mjs'),
      'export const myStore = { sessionExists: async () => false, save: async () => {}, extract: async () => {}, delete: async () => {} };\n',
    );
    // The instance example places a session on itself once its quarantine (7 s by default) is over.
    const instance = await timed('readme core', () => service(readmeExample('core'), 'start the WhatsApp client of 5511999990000', env));
    expect(await node(readmeExample('protocol'))).toMatch(
      /^wa-1 at http:\/\/127\.0\.0\.1:\d+ \(epoch \d+, live: true\)\nwa-1 .* 1\/20 live\n-1\n$/,
    );
    expect(await node(readmeExample('client'))).toContain('200 {"sent":true}');
    expect(await instance.stop()).toBe(0);
    const wwebjs = await service(readmeExample('wwebjs'), 'wa-2 runs the sessions it owns', env);
    expect(await wwebjs.stop()).toBe(0);
    expect(await node(readmeExample('sim'))).toMatch(/5511999990001 WORKING\n(.*\n)*5511999990001 FAILED\n(.*\n)*5511999990001 WORKING/);
  });
});
