<?php

declare(strict_types=1);

namespace Wafleet\Cache;

use Wafleet\Registry\OwnerInfo;

/**
 * Owners by session id for the life of the PHP process (a PHP-FPM worker serves many requests). There is no push
 * to keep it current: an entry lives `ttlMs` at most, and a request that meets a stale owner (421, 404 after a
 * move, connection failure) replaces it, so a stale entry costs one extra hop, never a wrong delivery.
 */
final class OwnerCache
{
    /** @var array<string, OwnerCache> */
    private static array $perProcess = [];

    /** @var array<string, array{0: OwnerInfo, 1: float}> insertion-ordered: the first entry is the oldest */
    private array $entries = [];
    private int $hits = 0;

    /**
     * @param int $ttlMs      age after which an entry is read again from the registry @default 60000
     * @param int $maxEntries most sessions kept; the oldest go first @default 10000
     */
    public function __construct(public readonly int $ttlMs = 60000, public readonly int $maxEntries = 10000)
    {
    }

    /** The cache shared by every client of `$scope` (e.g. a namespace and Redis) in this process. */
    public static function forProcess(string $scope, int $ttlMs = 60000, int $maxEntries = 10000): self
    {
        $cache = self::$perProcess[$scope] ?? null;
        if ($cache === null || $cache->ttlMs !== $ttlMs || $cache->maxEntries !== $maxEntries) {
            $cache = self::$perProcess[$scope] = new self($ttlMs, $maxEntries);
        }
        return $cache;
    }

    public function get(string $sessionId): ?OwnerInfo
    {
        $entry = $this->entries[$sessionId] ?? null;
        if ($entry === null) {
            return null;
        }
        if (self::nowMs() - $entry[1] >= $this->ttlMs) {
            unset($this->entries[$sessionId]);
            return null;
        }
        $this->hits++;
        return $entry[0];
    }

    public function put(OwnerInfo $owner): void
    {
        unset($this->entries[$owner->sessionId]);
        $this->entries[$owner->sessionId] = [$owner, self::nowMs()];
        if (count($this->entries) > $this->maxEntries) {
            unset($this->entries[array_key_first($this->entries)]);
        }
    }

    public function forget(string $sessionId): void
    {
        unset($this->entries[$sessionId]);
    }

    /** @return array{entries: int, hits: int} */
    public function stats(): array
    {
        return ['entries' => count($this->entries), 'hits' => $this->hits];
    }

    private static function nowMs(): float
    {
        return hrtime(true) / 1e6;
    }
}
