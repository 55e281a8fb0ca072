// Low-level registry pieces for @wafleet/client and operator tools. Hosts use createFleet() instead.
export { registryKeys, type RegistryKeys } from './keys.js';
export {
  connect,
  disconnect,
  open,
  resolveRedisOption,
  runScript,
  type Connection,
  type ConnectionRole,
  type RedisEndpoint,
  type RedisLike,
  type RedisOption,
  type RedisTarget,
  type Script,
} from './redis.js';
export { ReplyCode, asReply, replyError, type Reply } from './reply-codes.js';
export { scripts } from './scripts.generated.js';
export { lookupOwner, listInstances, placeSession, stopUnowned, type PlacementTiming } from './queries.js';
