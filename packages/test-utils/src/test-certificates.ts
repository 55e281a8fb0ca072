import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findExecutable } from './find-executable.js';

const run = promisify(execFile);

/** A private CA and a server certificate it signed, for TLS tests. */
export interface TestCertificates {
  /** PEM of the CA certificate: give it to clients as `tls.ca`. */
  readonly ca: string;
  readonly caFile: string;
  /** Server certificate for `localhost` and `127.0.0.1`. */
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * Generates a throwaway CA and a server certificate (valid for `localhost` and `127.0.0.1`, two days) into
 * `dir` with the `openssl` CLI. P-256 keys keep it fast.
 */
export async function createTestCertificates(dir: string): Promise<TestCertificates> {
  const openssl = findExecutable('openssl') ?? findExecutable('/usr/bin/openssl');
  if (!openssl) throw new Error('createTestCertificates: openssl not found on PATH');
  const file = (name: string) => join(dir, name);
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(openssl, [
    'req', '-x509', ...key, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '2', '-subj', '/CN=wafleet test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]); // prettier-ignore
  await run(openssl, ['req', '-new', ...key, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost']);
  await writeFile(file('server.ext'), 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await run(openssl, [
    'x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-out', file('server.crt'), '-days', '2', '-extfile', file('server.ext'),
  ]); // prettier-ignore
  return { ca: await readFile(file('ca.crt'), 'utf8'), caFile: file('ca.crt'), certFile: file('server.crt'), keyFile: file('server.key') };
}
