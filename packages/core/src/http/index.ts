export { createFleetRouter, type FleetRouterOptions } from './router.js';
export { requireAuth, MIN_TOKEN_LENGTH, type RouterAuth } from './auth.js';
export { fleetGuard, type FleetGuardOptions } from './guard.js';
export { idempotency, type IdempotencyOptions } from './idempotency.js';
export {
  EPOCH_HEADER,
  FORWARDED_BY_HEADER,
  FORWARDED_HEADER,
  IDEMPOTENCY_HEADER,
  REPLAYED_HEADER,
  SERVED_EPOCH_HEADER,
} from '@wafleet/protocol';
export { createFleetMetrics } from '../metrics/fleet-metrics.js';
export { createOutboxMetrics } from '../metrics/outbox-metrics.js';
export { createSupervisorMetrics } from '../metrics/supervisor-metrics.js';
export type { SessionIdOf } from './session-id.js';
