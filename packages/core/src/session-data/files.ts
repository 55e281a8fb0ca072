import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError, describeValue as describe, UPLOAD_ID_PATTERN } from '@wafleet/protocol';

/** Size and SHA-256 of a file, streamed (an archive is never held in memory whole). */
export async function digestFile(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { size, sha256: hash.digest('hex') };
}

/** A fresh name next to `file` (same directory, so a rename onto `file` is atomic), hidden and recognisable. */
export function siblingTempPath(file: string, suffix: string): string {
  return join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.${suffix}`);
}

/** Flushes a file or directory to stable storage. */
export async function fsyncPath(path: string, flags: 'r' | 'r+' = 'r'): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Removes a file, ignoring one that is not there. */
export function removeFile(path: string): Promise<void> {
  return rm(path, { force: true });
}

/** A fresh upload id: 24 hex digits, never reused (matches `UPLOAD_ID_PATTERN`). */
export function newUploadId(): string {
  return randomBytes(12).toString('hex');
}

/** Returns `uploadId` when it matches `UPLOAD_ID_PATTERN` (safe as a file name and in a key). */
export function checkUploadId(uploadId: unknown): string {
  if (typeof uploadId !== 'string' || !UPLOAD_ID_PATTERN.test(uploadId)) {
    throw new ConfigError('uploadId', `Expected \`uploadId\` to match ${String(UPLOAD_ID_PATTERN)}, got ${describe(uploadId)}`);
  }
  return uploadId;
}
