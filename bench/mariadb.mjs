// MariaDB for the benchmarks that compare wafleet's owner lookup with today's pattern: one query per message
// against an `assigned_instance_url` column. Uses 127.0.0.1:3306, user root without password, database `test`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import mysql from 'mysql2/promise';

import { benchLog, onCleanup, positiveInt } from './lib.mjs';

export const MARIADB = {
  host: process.env.MARIADB_HOST || '127.0.0.1',
  port: positiveInt(process.env.MARIADB_PORT, 3306),
  user: 'root',
  password: '',
  database: 'test',
};

const log = benchLog('bench:mariadb');

async function canReachMariadb() {
  try {
    const conn = await mysql.createConnection({ ...MARIADB, connectTimeout: 2_000 });
    const [rows] = await conn.query('SELECT VERSION() AS v');
    await conn.end();
    return String(rows[0].v);
  } catch (err) {
    log(`MariaDB at ${MARIADB.host}:${MARIADB.port} not reachable: ${err.code ?? err.message}`);
    return undefined;
  }
}

/** Returns the server version, starting the local mariadbd once if it does not answer; undefined if unreachable. */
export async function ensureMariadb() {
  let version = await canReachMariadb();
  if (version) return { version, note: '' };
  if (!existsSync('/usr/sbin/mariadbd'))
    return { version: undefined, note: 'MariaDB was not reachable and /usr/sbin/mariadbd does not exist' };
  log('starting mariadbd with start-stop-daemon');
  const r = spawnSync('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/mariadbd'], { encoding: 'utf8' });
  if (r.status !== 0) log(`start-stop-daemon exited ${r.status}: ${r.stderr || r.error?.message || ''}`);
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    await sleep(1_000);
    version = await canReachMariadb();
    if (version) return { version, note: ' (started by this script with `start-stop-daemon`)' };
  }
  return {
    version: undefined,
    note: `MariaDB at ${MARIADB.host}:${MARIADB.port} could not be reached, even after trying to start /usr/sbin/mariadbd`,
  };
}

/**
 * Creates `test.<table>` (session_id -> assigned_instance_url) filled with `ids`, dropped at cleanup; returns its
 * storage engine.
 */
export async function accountsTable(pool, table, ids, urlOf, logTo = log) {
  await pool.query(`DROP TABLE IF EXISTS ${table}`);
  onCleanup(`drop table test.${table}`, async () => {
    const conn = await mysql.createConnection(MARIADB);
    try {
      await conn.query(`DROP TABLE IF EXISTS ${table}`);
      logTo(`dropped test.${table}`);
    } finally {
      await conn.end();
    }
  });
  await pool.query(
    `CREATE TABLE ${table} (session_id VARCHAR(128) NOT NULL PRIMARY KEY, assigned_instance_url VARCHAR(255) NOT NULL) ENGINE=InnoDB`,
  );
  await pool.query(`INSERT INTO ${table} (session_id, assigned_instance_url) VALUES ?`, [ids.map((id) => [id, urlOf(id)])]);
  const [[engine]] = await pool.query(
    `SELECT ENGINE AS engine FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'test' AND TABLE_NAME = ?`,
    [table],
  );
  return engine?.engine ?? 'unknown';
}
