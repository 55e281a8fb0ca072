export { createWwebjsEngine, type CreateClient, type WwebjsEngineOptions } from './engine.js';
export { createRemoteAuthStore, type RemoteAuthStoreOptions } from './remote-auth-store.js';
export { remoteAuthStoreBackend, type RemoteAuthStoreBackendOptions } from './remote-auth-store-backend.js';
export type { BlobBackend, BlobName, SessionDataLike } from './session-data-types.js';
