export { createWwebjsEngine, type CreateClient, type WwebjsEngineOptions } from './engine.js';
export { createRemoteAuthStore, type RemoteAuthStoreOptions, type SessionDataLike } from './remote-auth-store.js';
export { remoteAuthStoreBackend, type RemoteAuthStoreBackendOptions } from './remote-auth-store-backend.js';
/** @deprecated check-then-act; see {@link createRemoteAuthStore} and {@link remoteAuthStoreBackend}. */
export { createFencedStore, FencedWriteError, type FencedStoreOptions, type OwnershipGuard } from './fenced-store.js';
