// Runs vitest, then PHPUnit over packages/php even when vitest failed, and exits non-zero if either failed.
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

const vitest = run(join(root, 'node_modules', '.bin', 'vitest'), ['run', ...process.argv.slice(2)]);
const phpunit = run('phpunit', ['-c', join(root, 'packages', 'php', 'phpunit.xml'), '--log-junit', junit]);
if (phpunit !== 0)
  console.error(
    `PHPUnit exited ${phpunit} (needs php-cli, php-redis, php-curl, php-guzzlehttp-guzzle, phpunit, php-laravel-framework, php-sqlite3)`,
  );
process.exit(vitest !== 0 || phpunit !== 0 ? 1 : 0);
