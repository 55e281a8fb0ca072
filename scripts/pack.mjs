// Packs every public package into one directory with `pnpm pack`, which rewrites `workspace:*` to the real version
// (`npm pack` keeps it, and npm then refuses the tarball with EUNSUPPORTEDPROTOCOL), and checks what was packed.
//
//   node scripts/pack.mjs [--out <dir>] [--json]     (pnpm run pack builds first)
//
// Fails when a package is not built, when a packed manifest still says `workspace:` or names a private package, when
// a tarball holds `src/`, a test file or a stale dist file.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: { out: { type: 'string', default: join(root, '.wafleet-tmp', 'pack') }, json: { type: 'boolean' } },
});
const out = resolve(values.out);

/** The pnpm binary: the one running this script, else the root's packageManager through npx (once: npx costs ~2 s). */
async function findPnpm() {
  if (process.env.npm_config_user_agent?.startsWith('pnpm/') && process.env.npm_execpath) return process.env.npm_execpath;
  const packageManager = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).packageManager;
  return (await run('npx', ['-y', '-p', packageManager, '-c', 'command -v pnpm'])).stdout.trim();
}

const manifests = readdirSync(join(root, 'packages'))
  .map((name) => join(root, 'packages', name))
  .filter((dir) => existsSync(join(dir, 'package.json')))
  .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) }));
const privateNames = new Set(manifests.filter((p) => p.manifest.private).map((p) => p.manifest.name));
const publicPackages = manifests.filter((p) => !p.manifest.private);

/** What is wrong with a package before packing: a `files` entry that does not exist packs silently without it. */
function unbuilt({ dir, manifest }) {
  const missing = manifest.files.filter((f) => !f.startsWith('!') && !existsSync(join(dir, f)));
  return missing.length > 0 ? [`${manifest.name}: ${missing.join(', ')} missing (run pnpm build first)`] : [];
}

/** The source a packed dist file was compiled from: `package/dist/a/b.d.ts` and `.js` from `src/a/b.ts`. */
const sourceOf = (entry) => entry.replace(/^package\/dist\//, 'src/').replace(/(\.d\.ts|\.js)$/, '.ts');

/** What is wrong with a packed tarball: its manifest and file list as npm would install them. */
async function problems(name, dir, tarball) {
  const manifest = (await run('tar', ['-xOzf', tarball, 'package/package.json'])).stdout;
  const entries = (await run('tar', ['-tzf', tarball])).stdout.split('\n').filter(Boolean);
  const found = [];
  if (manifest.includes('workspace:')) found.push(`${name}: the packed package.json still says workspace:`);
  const fields = ['dependencies', 'optionalDependencies', 'peerDependencies', 'devDependencies'];
  const deps = fields.flatMap((field) => Object.keys(JSON.parse(manifest)[field] ?? {}));
  for (const dep of deps.filter((d) => privateNames.has(d))) found.push(`${name}: depends on the private package ${dep}`);
  for (const entry of entries.filter((e) => e.startsWith('package/src/') || /\.test\./.test(e))) found.push(`${name}: ships ${entry}`);
  // tsc never deletes: a module removed from src/ stays in dist/ and would ship.
  for (const entry of entries.filter((e) => e.startsWith('package/dist/') && !existsSync(join(dir, sourceOf(e))))) {
    found.push(`${name}: ships ${entry}, whose source is gone (a stale build: delete dist/ and build again)`);
  }
  return { found, entries };
}

const before = publicPackages.flatMap(unbuilt);
if (before.length > 0) {
  console.error(before.join('\n'));
  process.exit(1);
}

const pnpm = await findPnpm();
mkdirSync(out, { recursive: true });
for (const file of readdirSync(out).filter((f) => f.endsWith('.tgz'))) rmSync(join(out, file));
const packed = await Promise.all(
  publicPackages.map(async ({ dir, manifest }) => {
    const { stdout } = await run(pnpm, ['pack', '--pack-destination', out, '--json'], { cwd: dir });
    const tarball = JSON.parse(stdout).filename;
    return { name: manifest.name, version: manifest.version, tarball, ...(await problems(manifest.name, dir, tarball)) };
  }),
);
const found = packed.flatMap((p) => p.found);
if (found.length > 0) {
  console.error(found.join('\n'));
  process.exit(1);
}
if (values.json) console.log(JSON.stringify(packed.map(({ name, version, tarball, entries }) => ({ name, version, tarball, entries }))));
else for (const p of packed) console.log(`${p.tarball} (${p.entries.length} files)`);
