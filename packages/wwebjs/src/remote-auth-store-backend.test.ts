import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Store } from 'whatsapp-web.js';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../test/client-fixture.js';
import { remoteAuthStoreBackend } from './remote-auth-store-backend.js';

afterAll(removeTempDirs);

/** A community store as they are written: it reads `${session}.zip` itself and writes extract to `options.path`. */
function communityStore() {
  const objects = new Map<string, Buffer>();
  const store: Store = {
    sessionExists: async ({ session }) => objects.has(session),
    save: async ({ session }) => void objects.set(session, readFileSync(`${session}.zip`)),
    extract: async ({ session, path: file }) => {
      const bytes = objects.get(session);
      if (bytes) writeFileSync(file!, bytes);
    },
    delete: async ({ session }) => void objects.delete(session),
  };
  return { store, objects };
}

describe('remoteAuthStoreBackend', () => {
  it('stores every upload under its own versioned name and leaves no staged zip behind', async () => {
    const { store, objects } = communityStore();
    const scratchDir = tempDir('wafleet-wwebjs-scratch-');
    const backend = remoteAuthStoreBackend(store, { scratchDir });
    const file = path.join(tempDir('wafleet-wwebjs-src-'), 'a.zip');
    writeFileSync(file, 'version 1');
    await backend.put({ sessionId: 's1', uploadId: 'u1' }, file);
    writeFileSync(file, 'version 2');
    await backend.put({ sessionId: 's1', uploadId: 'u2' }, file);
    expect([...objects.keys()]).toEqual([path.join(scratchDir, 's1.u1'), path.join(scratchDir, 's1.u2')]);
    expect(existsSync(path.join(scratchDir, 's1.u1.zip'))).toBe(false);

    const out = path.join(tempDir('wafleet-wwebjs-out-'), 'restored.zip');
    await backend.get({ sessionId: 's1', uploadId: 'u1' }, out);
    expect(readFileSync(out, 'utf8')).toBe('version 1');
    await backend.remove({ sessionId: 's1', uploadId: 'u1' });
    await backend.remove({ sessionId: 's1', uploadId: 'u1' });
    expect(objects.size).toBe(1);
  });

  it('rejects a get when the store wrote nothing (some resolve silently for a missing object)', async () => {
    const backend = remoteAuthStoreBackend(communityStore().store, { scratchDir: tempDir('wafleet-wwebjs-scratch-') });
    const out = path.join(tempDir('wafleet-wwebjs-out-'), 'restored.zip');
    await expect(backend.get({ sessionId: 's1', uploadId: 'missing' }, out)).rejects.toThrow(/wrote nothing/);
  });

  it('validates its arguments', () => {
    expect(() => remoteAuthStoreBackend({} as Store, { scratchDir: 'x' })).toThrow(
      expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'store' }),
    );
    expect(() => remoteAuthStoreBackend(communityStore().store, { scratchDir: '' })).toThrow(/scratchDir/);
  });
});
