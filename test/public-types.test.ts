// Compile-time checks of the public surface (`tsc -p tsconfig.json` fails when one breaks); at run time they pass.
import type { FleetClient, OwnerChange, OwnerRoute, SessionOwner } from '@wafleet/client';
import type { Fleet, InstanceIdentity, OutboxOptions, SupervisedFleet, SupervisorOptions } from '@wafleet/core';
import { describe, expectTypeOf, it } from 'vitest';

describe('public types', () => {
  it('a Fleet shows its identity read-only, and neither its options, keys nor command connection', () => {
    expectTypeOf<Fleet['instanceId']>().toEqualTypeOf<string>();
    expectTypeOf<Fleet['url']>().toEqualTypeOf<string>();
    expectTypeOf<Fleet['namespace']>().toEqualTypeOf<string>();
    expectTypeOf<Fleet['maxSessions']>().toEqualTypeOf<number>();
    expectTypeOf<Fleet>().not.toHaveProperty('options');
    expectTypeOf<Fleet>().not.toHaveProperty('keys');
    expectTypeOf<Fleet>().not.toHaveProperty('redis');
  });

  it('a Fleet is a SupervisedFleet and an InstanceIdentity; createSupervisor and createOutbox take those', () => {
    expectTypeOf<Fleet>().toExtend<SupervisedFleet>();
    expectTypeOf<Fleet>().toExtend<InstanceIdentity>();
    expectTypeOf<SupervisorOptions['fleet']>().toEqualTypeOf<SupervisedFleet>();
    expectTypeOf<OutboxOptions['instance']>().toEqualTypeOf<InstanceIdentity | undefined>();
  });

  it('the client names an owner as the registry does', () => {
    expectTypeOf<SessionOwner>().toExtend<OwnerRoute>();
    expectTypeOf<OwnerChange>().toExtend<OwnerRoute>();
    expectTypeOf<OwnerRoute>().toHaveProperty('owner').toEqualTypeOf<string>();
    expectTypeOf<OwnerRoute>().toHaveProperty('ownerUrl').toEqualTypeOf<string>();
    expectTypeOf<OwnerRoute>().not.toHaveProperty('instanceId');
    expectTypeOf<OwnerRoute>().not.toHaveProperty('url');
    expectTypeOf<ReturnType<FleetClient['fetch']>>().resolves.not.toBeAny();
    const lookups = (c: FleetClient) => ({ route: c.lookup('s1'), record: c.lookup('s1', { details: true }) });
    expectTypeOf(lookups).returns.toHaveProperty('route').resolves.toEqualTypeOf<OwnerRoute | null>();
    expectTypeOf(lookups).returns.toHaveProperty('record').resolves.toEqualTypeOf<SessionOwner | null>();
  });

  it('a FleetClient keeps its resolved options and registry keys to itself', () => {
    expectTypeOf<FleetClient>().not.toHaveProperty('options');
    expectTypeOf<FleetClient>().not.toHaveProperty('keys');
  });
});
