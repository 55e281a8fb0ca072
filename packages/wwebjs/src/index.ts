export { createWwebjsEngine, type CreateClient, type WwebjsEngineOptions } from './engine.js';
export { createRemoteAuthStore, type RemoteAuthStoreOptions, type SessionDataLike } from './remote-auth-store.js';
export { remoteAuthStoreBackend, type RemoteAuthStoreBackendOptions } from './remote-auth-store-backend.js';
