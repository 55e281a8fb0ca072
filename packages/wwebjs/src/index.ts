export { createWwebjsEngine, type CreateClient, type WwebjsEngineOptions } from './engine.js';
export { createFencedStore, FencedWriteError, type FencedStoreOptions, type OwnershipGuard } from './fenced-store.js';
