<?php

declare(strict_types=1);

namespace Wafleet\Registry;

use Wafleet\Exception\ConfigException;
use Wafleet\Exception\RegistryUnavailableException;
use Wafleet\Generated\Protocol;
use Wafleet\Generated\Scripts;

/**
 * Reads the registry with the very Lua scripts the Node side runs (generated into {@see Scripts} from @wafleet/protocol):
 * one round trip per lookup, EVALSHA first and EVAL when Redis does not know the script yet. Never writes.
 */
final class Registry
{
    private int $reads = 0;

    public function __construct(private readonly \Redis $redis, public readonly Keys $keys)
    {
        // A key prefix would make every key name wrong; a serializer would garble the replies.
        $prefix = (string) $redis->getOption(\Redis::OPT_PREFIX);
        if ($prefix !== '') {
            throw new ConfigException('redis', 'Expected a Redis connection without key prefix (Redis::OPT_PREFIX, Laravel\'s `prefix` option); got one with a prefix');
        }
        if ((int) $redis->getOption(\Redis::OPT_SERIALIZER) !== \Redis::SERIALIZER_NONE) {
            throw new ConfigException('redis', 'Expected a Redis connection without serializer (Redis::OPT_SERIALIZER, Laravel\'s `serializer` option)');
        }
    }

    /** The owner of `$sessionId`, null when the registry has never seen it. One round trip. */
    public function owner(string $sessionId): ?OwnerInfo
    {
        $keys = $this->keys;
        $reply = $this->run(Scripts::LOOKUP, [$keys->instances, $keys->instanceInfo, $keys->sessions], [Ids::session($sessionId)]);
        if ((int) $reply[0] === Protocol::REPLY_NOT_FOUND) {
            return null;
        }
        [, $owner, $epoch, $status, $desired, $url, $live, , $reason, $metadata] = array_map('strval', $reply) + array_fill(0, 10, '');
        return new OwnerInfo(
            sessionId: $sessionId,
            owner: $owner,
            ownerUrl: $url,
            epoch: $epoch === '' ? '0' : $epoch,
            status: $status,
            desired: $desired,
            live: $live === '1',
            reason: $reason,
            metadata: $metadata === '' ? [] : (array) json_decode($metadata, true, 64, JSON_THROW_ON_ERROR),
        );
    }

    /** @return list<InstanceInfo> every registered instance with its load. One round trip. */
    public function instances(): array
    {
        $keys = $this->keys;
        $reply = $this->run(Scripts::INSTANCES, [$keys->instances, $keys->instanceInfo, $keys->owned], []);
        $rows = json_decode((string) $reply[2], true, 64, JSON_THROW_ON_ERROR);
        return array_map(static fn (array $r) => new InstanceInfo(
            id: (string) $r['id'],
            url: (string) $r['url'],
            maxSessions: (int) $r['max'],
            load: (int) $r['load'],
            // cjson encodes an empty Lua table as an array.
            labels: array_is_list($r['labels'] ?? []) ? [] : $r['labels'],
            draining: (bool) $r['draining'],
            mode: (string) $r['mode'],
            leaseDeadline: (int) $r['deadline'],
            live: (bool) $r['live'],
        ), $rows);
    }

    /** Registry round trips made by this object. */
    public function reads(): int
    {
        return $this->reads;
    }

    /**
     * @param array{name: string, numberOfKeys: int, sha: string, lua: string} $script
     * @param list<string> $keys
     * @param list<string> $args
     * @return list<mixed>
     */
    private function run(array $script, array $keys, array $args): array
    {
        $this->reads++;
        try {
            $reply = $this->redis->evalSha($script['sha'], [...$keys, ...$args], $script['numberOfKeys']);
            if ($reply === false && str_starts_with((string) $this->redis->getLastError(), 'NOSCRIPT')) {
                $this->redis->clearLastError();
                $reply = $this->redis->eval($script['lua'], [...$keys, ...$args], $script['numberOfKeys']);
            }
        } catch (\RedisException $e) {
            throw new RegistryUnavailableException("Redis failed the {$script['name']} script: {$e->getMessage()}", $e);
        }
        if (!is_array($reply) || !in_array((int) ($reply[0] ?? 0), [Protocol::REPLY_OK, Protocol::REPLY_NOT_FOUND], true)) {
            $error = (string) $this->redis->getLastError();
            $this->redis->clearLastError();
            throw new RegistryUnavailableException(
                "Unexpected reply to the {$script['name']} script" . ($error === '' ? '' : ": $error"),
                null,
                $error === '' ? 'WAFLEET_REDIS_REPLY' : 'WAFLEET_REDIS_UNAVAILABLE',
            );
        }
        return $reply;
    }
}
