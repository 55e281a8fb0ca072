import { describe, expect, it } from 'vitest';
import { ConfigError } from '@wafleet/protocol';
import { resolveFleetOptions, TIMING_PROFILES, type FleetOptions } from './options.js';

const base: FleetOptions = { redis: 'redis://127.0.0.1:6390', instanceId: 'wa-1', url: 'http://wa-1:3000/', maxSessions: 10 };

function configError(options: FleetOptions): ConfigError {
  try {
    resolveFleetOptions(options);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('fleet options', () => {
  it('applies the default timing profile and normalises the url', () => {
    const o = resolveFleetOptions(base);
    expect(o).toMatchObject({ ...TIMING_PROFILES.default, namespace: 'default', mode: 'managed', url: 'http://wa-1:3000' });
    expect(o.quarantineMs).toBe(7000);
  });

  it('lets individual timing options override a profile', () => {
    const o = resolveFleetOptions({ ...base, profile: 'tolerant', heartbeatIntervalMs: 2000 });
    expect(o.leaseTtlMs).toBe(45000);
    expect(o.heartbeatIntervalMs).toBe(2000);
  });

  it('never mutates the caller options', () => {
    const options = Object.freeze({ ...base, labels: Object.freeze({ auth: 's3' }) });
    const o = resolveFleetOptions(options);
    expect(o.labels).toEqual({ auth: 's3' });
    expect(o.labels).not.toBe(options.labels);
  });

  it('names the option and the value in range errors', () => {
    const err = configError({ ...base, leaseTtlMs: -1 });
    expect(err.option).toBe('leaseTtlMs');
    expect(err.code).toBe('WAFLEET_CONFIG');
    expect(err.message).toBe('Expected `leaseTtlMs` to be an integer >= 30, got -1');
  });

  it('rejects a self-fence deadline at or after the lease TTL', () => {
    expect(configError({ ...base, selfFenceMs: 6000 }).option).toBe('selfFenceMs');
  });

  it('rejects a self-fence deadline shorter than two heartbeats', () => {
    expect(configError({ ...base, heartbeatIntervalMs: 3000 }).message).toMatch(/at least twice `heartbeatIntervalMs`/);
  });

  it('rejects a quarantine shorter than the self-fence deadline', () => {
    expect(configError({ ...base, quarantineMs: 1000 }).option).toBe('quarantineMs');
  });

  it('waits for a replica at most 1 s by default, less than a short command timeout, never as long as it', () => {
    expect(resolveFleetOptions(base).replicaAckTimeoutMs).toBe(1000);
    expect(resolveFleetOptions({ ...base, commandTimeoutMs: 300 }).replicaAckTimeoutMs).toBe(150);
    expect(resolveFleetOptions({ ...base, replicaAckTimeoutMs: 0 }).replicaAckTimeoutMs).toBe(0);
    expect(configError({ ...base, commandTimeoutMs: 500, replicaAckTimeoutMs: 500 }).option).toBe('replicaAckTimeoutMs');
    expect(configError({ ...base, replicaAckTimeoutMs: -1 }).option).toBe('replicaAckTimeoutMs');
  });

  it.each<[string, Partial<FleetOptions>]>([
    ['redis', { redis: 'localhost:6379' }],
    ['redis', { redis: [] as string[] }],
    ['url', { url: 'not a url' }],
    ['maxSessions', { maxSessions: 0 }],
    ['maxSessions', { maxSessions: 2.5 }],
    ['mode', { mode: 'passive' as 'managed' }],
    ['profile', { profile: 'fast' as 'default' }],
    ['labels', { labels: { auth: 3 as unknown as string } }],
    ['sweepBatch', { sweepBatch: 10_000 }],
    ['stopSession', { stopSession: 'no' as unknown as () => void }],
  ])('rejects a bad %s', (option, patch) => {
    expect(configError({ ...base, ...patch } as FleetOptions).option).toBe(option);
  });

  it('rejects a bad instance id with the id error class', () => {
    expect(() => resolveFleetOptions({ ...base, instanceId: 'a:b' })).toThrow(/Instance id must be ASCII letters/);
  });
});
