export {
  createFleetClient,
  FleetClient,
  FailoverTimeoutError,
  type FleetClientOptions,
  type FleetClientEvents,
  type FleetClientStats,
  type OwnerChange,
} from './fleet-client.js';
export type { OwnerRoute, SessionOwner, SessionStatus } from '@wafleet/protocol';
export { verifyWebhook, WebhookVerificationError, compareEventOrder, type WebhookEnvelope } from './verify-webhook.js';
