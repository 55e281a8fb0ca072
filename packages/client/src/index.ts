export {
  createFleetClient,
  FleetClient,
  FailoverTimeoutError,
  type FleetClientOptions,
  type FleetClientEvents,
  type FleetClientStats,
  type OwnerInfo,
  type OwnerChange,
} from './fleet-client.js';
export { verifyWebhook, WebhookVerificationError, compareEventOrder, type WebhookEnvelope } from './verify-webhook.js';
