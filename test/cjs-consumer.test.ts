import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const dir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'cjs-consumer');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

describe('CommonJS consumers', () => {
  it('require() loads @wafleet/core, @wafleet/core/express and @wafleet/client', async () => {
    const { stdout, stderr } = await run(process.execPath, [join(dir, 'consumer.cjs')]);
    expect(JSON.parse(stdout)).toEqual({
      createFleet: 'function',
      router: 'function',
      guard: 'function',
      idempotency: 'function',
      client: 'function',
      compare: -1,
      configError: { code: 'WAFLEET_CONFIG', option: 'maxSessions', isConfigError: true },
    });
    expect(stderr).toBe('');
  });

  it('TypeScript compiled as CommonJS gets the full types through require()', async () => {
    await expect(run(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')])).resolves.toMatchObject({ stdout: '' });
  });
});
