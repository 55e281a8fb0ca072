export {
  createFleetClient,
  FleetClient,
  FailoverTimeoutError,
  type FleetClientOptions,
  type FleetClientEvents,
  type FleetClientStats,
  type OwnerInfo,
  type OwnerRoute,
  type OwnerChange,
} from './fleet-client.js';
export { verifyWebhook, WebhookVerificationError, compareEventOrder, type WebhookEnvelope } from './verify-webhook.js';
