<?php

declare(strict_types=1);

namespace Wafleet\Tests\Unit;

use PHPUnit\Framework\TestCase;
use Wafleet\Cache\OwnerCache;
use Wafleet\Registry\OwnerInfo;

final class OwnerCacheTest extends TestCase
{
    private static function owner(string $sessionId): OwnerInfo
    {
        return new OwnerInfo($sessionId, 'wa-1', 'http://wa-1:3000', '17', 'WORKING', 'running', true, '', []);
    }

    public function testAnEntryIsForgottenOnceItsTtlHasPassed(): void
    {
        $cache = new OwnerCache(ttlMs: 50);
        $cache->put(self::owner('s1'));
        self::assertSame('wa-1', $cache->get('s1')?->owner);
        usleep(60_000);
        self::assertNull($cache->get('s1'));
    }

    public function testTheOldestEntryGoesFirstWhenTheCacheIsFull(): void
    {
        $cache = new OwnerCache(maxEntries: 2);
        $cache->put(self::owner('s1'));
        $cache->put(self::owner('s2'));
        $cache->put(self::owner('s1')); // refreshed: now the newest
        $cache->put(self::owner('s3'));
        self::assertNull($cache->get('s2'));
        self::assertNotNull($cache->get('s1'));
        self::assertNotNull($cache->get('s3'));
    }

    public function testTheProcessCacheIsSharedByEveryClientOfAScope(): void
    {
        $scope = 'test-' . bin2hex(random_bytes(4));
        OwnerCache::forProcess($scope)->put(self::owner('s1'));
        self::assertNotNull(OwnerCache::forProcess($scope)->get('s1'));
        self::assertNull(OwnerCache::forProcess("$scope-other")->get('s1'));
    }
}
