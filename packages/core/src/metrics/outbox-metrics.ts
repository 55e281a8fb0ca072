import type { Registry } from 'prom-client';
import type { Outbox } from '../outbox/outbox.js';
import { optionalPeer } from '../http/optional-peer.js';
import { attachOnce, scrapedCounter, scrapedGauge } from './metric-helpers.js';

/**
 * Registers the webhook outbox metrics on `registry`, once per registry and outbox: deliveries by outcome, attempt
 * duration, pending, oldest pending age, dead letters and circuit-breaker state.
 * @throws ConfigError when prom-client (an optional peer dependency) is not installed
 * @example
 * createOutboxMetrics(outbox, registry);
 */
export function createOutboxMetrics(outbox: Outbox, registry: Registry): Registry {
  const { Counter, Gauge, Histogram } = optionalPeer('prom-client', 'createOutboxMetrics');
  if (!attachOnce(registry, outbox)) return registry;
  const registers = [registry];
  const deliveries = new Counter({
    name: 'wafleet_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome (delivered, retry, dead, disabled, superseded)',
    labelNames: ['outcome'] as const,
    registers,
  });
  const duration = new Histogram({
    name: 'wafleet_webhook_attempt_duration_seconds',
    help: 'Duration of one webhook delivery attempt',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15],
    registers,
  });
  outbox.on('attempt', ({ outcome, durationMs }) => {
    deliveries.inc({ outcome });
    duration.observe(durationMs / 1000);
  });
  const gauge = (name: string, help: string, read: () => number) => scrapedGauge(registry, name, help, read);
  gauge('wafleet_outbox_pending', 'Events not yet delivered', () => outbox.stats().pending);
  gauge('wafleet_outbox_oldest_pending_age_seconds', 'Age of the oldest undelivered event', () => {
    const oldest = outbox.stats().oldestPendingAt;
    return oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
  });
  gauge('wafleet_outbox_dead_letters', 'Dead-lettered events kept for replay', () => outbox.stats().dead);
  // With group commits, writes / commits is how many writes share one fsync.
  scrapedCounter(registry, 'wafleet_outbox_store_writes_total', 'Writes to the outbox store', () => outbox.stats().store?.writes ?? 0);
  scrapedCounter(
    registry,
    'wafleet_outbox_store_commits_total',
    'Commits (fsyncs) of the outbox store that made its writes durable',
    () => outbox.stats().store?.commits ?? 0,
  );
  gauge(
    'wafleet_webhook_targets_disabled',
    'Webhook targets disabled after answering 410 Gone (until enableTarget)',
    () => outbox.stats().disabledTargets,
  );
  new Gauge({
    name: 'wafleet_webhook_breaker_state',
    help: 'Circuit breaker of the webhook endpoint (1 for the current state)',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const current = outbox.stats().breaker;
      for (const state of ['closed', 'open', 'half-open'] as const) this.set({ state }, current === state ? 1 : 0);
    },
  });
  return registry;
}
