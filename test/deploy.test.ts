import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DEPLOY = join(ROOT, 'deploy');
const RULES = join(DEPLOY, 'prometheus', 'wafleet-alerts.yml');
const read = (path: string) => readFileSync(path, 'utf8');
const promtool = (...args: string[]) => execFileSync('promtool', args, { cwd: join(DEPLOY, 'prometheus'), encoding: 'utf8' });
/** The source of core's metrics, where every exported metric name appears quoted. */
const metricSources = () =>
  readdirSync(join(ROOT, 'packages', 'core', 'src', 'metrics'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => read(join(ROOT, 'packages', 'core', 'src', 'metrics', f)))
    .join('\n');
const alerts = [...read(RULES).matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1]!);

describe('deploy/: alert rules, process manager files', () => {
  it('the alert rules pass promtool check rules, and promtool test rules has a test for every rule', () => {
    expect(promtool('check', 'rules', RULES)).toContain(`SUCCESS: ${alerts.length} rules found`);
    expect(promtool('test', 'rules', 'wafleet-alerts.test.yml')).toContain('SUCCESS');
    const tested = new Set([...read(join(DEPLOY, 'prometheus', 'wafleet-alerts.test.yml')).matchAll(/alertname: (\w+)/g)].map((m) => m[1]));
    expect(alerts.filter((a) => !tested.has(a))).toEqual([]);
    expect(alerts.length).toBeGreaterThanOrEqual(9);
  });

  it('every rule links a runbook paragraph in docs/operations.md and uses only metrics wafleet exports', () => {
    const operations = read(join(ROOT, 'docs', 'operations.md'));
    for (const alert of alerts) {
      expect(operations, `### ${alert}`).toContain(`\n### ${alert}\n`);
      expect(read(RULES)).toContain(`runbook: 'docs/operations.md#${alert.toLowerCase()}'`);
    }
    const sources = metricSources();
    const used = new Set([...read(RULES).matchAll(/\b(wafleet_\w+[a-z])\b/g)].map((m) => m[1]!));
    expect([...used].filter((name) => !sources.includes(`'${name}'`))).toEqual([]);
  });

  it('the Grafana dashboard is valid JSON whose every query uses metrics wafleet exports (and promtool parses)', () => {
    const dashboard = JSON.parse(read(join(DEPLOY, 'grafana', 'wafleet-dashboard.json'))) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    };
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(12);
    const sources = metricSources();
    for (const { title, targets } of dashboard.panels) {
      for (const { expr } of targets) {
        const names = [...expr.matchAll(/\b(wafleet_\w+[a-z])\b/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''));
        expect(names.length, title).toBeGreaterThan(0);
        expect(
          names.filter((name) => !sources.includes(`'${name}'`)),
          title,
        ).toEqual([]);
      }
    }
    // Every query is valid PromQL: as recording rules, promtool checks them.
    const dir = mkdtempSync(join(tmpdir(), 'wafleet-dashboard-'));
    const rules = dashboard.panels
      .flatMap((p) => p.targets)
      .map((t, i) => `      - record: 'wafleet:dashboard_query_${i}'\n        expr: '${t.expr.replaceAll("'", "''")}'`);
    writeFileSync(join(dir, 'dashboard-queries.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
    expect(promtool('check', 'rules', join(dir, 'dashboard-queries.yml'))).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it('systemd and pm2 give the drain on SIGTERM 90 s before killing', () => {
    const unit = read(join(DEPLOY, 'systemd', 'wafleet@.service'));
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1])).toBeGreaterThanOrEqual(90);
    const pm2 = createRequire(import.meta.url)(join(DEPLOY, 'pm2', 'ecosystem.config.cjs')) as { apps: Array<Record<string, unknown>> };
    expect(pm2.apps).toHaveLength(4);
    for (const app of pm2.apps) {
      expect(app['kill_timeout']).toBeGreaterThanOrEqual(90_000);
      expect(app['script']).toBe('examples/whatsapp-service/server.mjs');
    }
    expect(new Set(pm2.apps.map((a) => (a['env'] as Record<string, string>)['INSTANCE_ID'])).size).toBe(4);
  });
});
