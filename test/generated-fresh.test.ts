import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const scripts = join(root, 'packages', 'protocol', 'scripts');

// The generated TypeScript and PHP are committed (a checkout builds and the PHP kit runs without Node), so a change
// to the Lua or to the protocol's constants that is not regenerated must fail here, not in production.
describe('committed generated files', () => {
  it.each(['build-lua.mjs', 'build-php.mjs'])('%s --check finds them current', async (script) => {
    await expect(run(process.execPath, [join(scripts, script), '--check'])).resolves.toMatchObject({ stderr: '' });
  });

  it('the check fails on a stale file (and names it), without writing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wafleet-fresh-'));
    const generated = join(root, 'packages', 'php', 'src', 'Generated');
    for (const name of ['Scripts.php', 'Protocol.php']) copyFileSync(join(generated, name), join(dir, name));
    const stale = readFileSync(join(dir, 'Protocol.php'), 'utf8').replace('REPLY_NOT_FOUND = -10', 'REPLY_NOT_FOUND = -11');
    writeFileSync(join(dir, 'Protocol.php'), stale);
    const failed = await run(process.execPath, [join(scripts, 'build-php.mjs'), '--check', '--out', dir]).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain('Generated/Protocol.php is stale');
    expect(readFileSync(join(dir, 'Protocol.php'), 'utf8')).toBe(stale);
  });
});
