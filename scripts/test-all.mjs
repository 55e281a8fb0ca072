// Runs vitest (the sim chaos file alone, after the others), then PHPUnit over packages/php even when vitest failed, and exits non-zero if either failed.
// PHPUnit writes .wafleet-tmp/phpunit.xml (JUnit), which .ci/run adds to vitest's counts.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const junit = join(root, '.wafleet-tmp', 'phpunit.xml');
mkdirSync(dirname(junit), { recursive: true });
rmSync(junit, { force: true });

const run = (command, args) => {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) console.error(`${command}: ${result.error.message}`);
  return result.status ?? 1;
};

const vitestBin = join(root, 'node_modules', '.bin', 'vitest');
const args = process.argv.slice(2);
// The sim chaos run (5 instance processes, 100 sessions, logins saved every 2 s, ~2.5 min) loads both cores: beside it
// the timing bounds of the other tests measured the load, not wafleet. It runs alone, after the rest; its JSON report
// is a second file that .ci/run adds up with the first.
const ALONE = 'test/sim-chaos.test.ts';
let vitest;
if (args.length > 0) vitest = run(vitestBin, ['run', ...args]);
else {
  rmSync(join(root, '.wafleet-tmp', 'vitest-chaos.json'), { force: true });
  const rest = run(vitestBin, ['run', '--exclude', ALONE]);
  const alone = run(vitestBin, ['run', ALONE, '--outputFile.json=.wafleet-tmp/vitest-chaos.json']);
  vitest = rest !== 0 ? rest : alone;
}
const phpunit = run('phpunit', ['-c', join(root, 'packages', 'php', 'phpunit.xml'), '--log-junit', junit]);
if (phpunit !== 0)
  console.error(
    `PHPUnit exited ${phpunit} (needs php-cli, php-redis, php-curl, php-guzzlehttp-guzzle, phpunit, php-laravel-framework, php-sqlite3)`,
  );
process.exit(vitest !== 0 || phpunit !== 0 ? 1 : 0);
