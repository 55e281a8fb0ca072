// Writes generated files, or with `--check` only reports the ones that differ from what would be written.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Writes each of `files` (name -> text) into `dir` unless it already holds that text. With `--check` on the command
 * line nothing is written: each differing file is reported as `<label>/<name> is stale: <rerun>`. Exits 1 when
 * a checked file was stale.
 */
export function writeGenerated(files, { dir, label, rerun }) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [name, text] of Object.entries(files)) {
    const path = join(dir, name);
    let current = '';
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      // absent: stale
    }
    if (current === text) continue;
    if (check) {
      console.error(`${label}/${name} is stale: ${rerun}`);
      stale += 1;
    } else writeFileSync(path, text);
  }
  if (stale) process.exit(1);
}
