export { freePort, freePortPair, type FreePortPair } from './free-port.js';
export { killAll } from './process-registry.js';
export { redisCliBinary } from './redis-cli-binary.js';
export { REDIS_SERVER_NOT_FOUND, redisServerBinary } from './redis-server-binary.js';
export { redisForTests, type TestRedis } from './redis-for-tests.js';
export { sleep } from './sleep.js';
export {
  spawnProcess,
  type ChildExit,
  type ChildHandle,
  type SpawnProcessOptions,
} from './spawn-process.js';
export {
  startRedisCluster,
  type RedisClusterHandle,
  type RedisClusterNode,
  type StartRedisClusterOptions,
} from './start-redis-cluster.js';
export {
  startRedis,
  type RedisServerHandle,
  type RestartRedisOptions,
  type StartRedisOptions,
} from './start-redis.js';
export { uniqueNamespace } from './unique-namespace.js';
export { waitUntil, type WaitUntilOptions } from './wait-until.js';
