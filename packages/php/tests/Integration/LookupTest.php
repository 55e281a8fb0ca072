<?php

declare(strict_types=1);

namespace Wafleet\Tests\Integration;

use PHPUnit\Framework\TestCase;
use Wafleet\Cache\OwnerCache;
use Wafleet\Exception\InstanceException;
use Wafleet\Fleet;
use Wafleet\Registry\OwnerInfo;
use Wafleet\Tests\Support\Processes;
use Wafleet\Tests\Support\RedisServer;
use Wafleet\Tests\Support\SimFleet;

/** Lookup, cache, 421 and the admin routes against a real Redis and two real wafleet-sim instances. */
final class LookupTest extends TestCase
{
    private static SimFleet $sim;

    public static function setUpBeforeClass(): void
    {
        self::$sim = new SimFleet('php-lookup');
        self::$sim->start('wa-1', 'wa-2');
    }

    public static function tearDownAfterClass(): void
    {
        self::$sim->killAll();
    }

    private static function fleet(?OwnerCache $cache = null): Fleet
    {
        return new Fleet(RedisServer::connect(), [
            'namespace' => self::$sim->namespace,
            'adminToken' => SimFleet::ADMIN_TOKEN,
            'leaseTtlMs' => SimFleet::LEASE_TTL_MS,
            'failoverTimeoutMs' => 6000,
        ], $cache ?? new OwnerCache());
    }

    private static function working(Fleet $fleet, string $sessionId): OwnerInfo
    {
        return Processes::waitFor(static function () use ($fleet, $sessionId) {
            $o = $fleet->lookup($sessionId, true);
            return $o !== null && $o->live && $o->status === 'WORKING' ? $o : null;
        }, 8000, "$sessionId WORKING");
    }

    public function testLookupGivesTheSameAnswerAsTheInstancesOwnRecord(): void
    {
        $fleet = self::fleet();
        $placed = $fleet->place('lookup-1', null, ['workspace' => 'w-17']);
        self::assertContains($placed['outcome'], ['assigned', 'existing']);
        $owner = self::working($fleet, 'lookup-1');
        $record = self::$sim->sessionRecord($owner->owner, 'lookup-1');
        self::assertSame(
            [$record['owner'], $record['ownerUrl'], $record['epoch'], $record['status'], $record['desired'], $record['live'], $record['reason'], $record['metadata']],
            [$owner->owner, $owner->ownerUrl, $owner->epoch, $owner->status, $owner->desired, $owner->live, $owner->reason, $owner->metadata],
        );
        self::assertSame(['workspace' => 'w-17'], $owner->metadata);
        self::assertSame(self::$sim->instances[$owner->owner]['url'], $owner->ownerUrl);
    }

    public function testASecondLookupWithinTheTtlIsAnsweredFromTheCacheWithoutARegistryRead(): void
    {
        $fleet = self::fleet();
        $fleet->place('lookup-2');
        self::working($fleet, 'lookup-2');
        $before = $fleet->stats()['registryReads'];
        $a = $fleet->lookup('lookup-2');
        $b = $fleet->lookup('lookup-2');
        self::assertSame($a, $b);
        self::assertSame($before, $fleet->stats()['registryReads']);
        self::assertSame(2, $fleet->stats()['cacheHits']);
    }

    public function testAnUncachedLookupOfAnUnknownSessionIsNull(): void
    {
        $fleet = self::fleet();
        self::assertNull($fleet->lookup('never-placed'));
        self::assertSame(1, $fleet->stats()['registryReads']);
    }

    public function testTheLookupScriptIsLoadedWithEvalWhenRedisDoesNotKnowItAndRunByShaAfterwards(): void
    {
        $redis = RedisServer::connect();
        $sha = \Wafleet\Generated\Scripts::LOOKUP['sha'];
        $fleet = self::fleet();
        $fleet->place('lookup-3');
        // The instances run the lookup too and may load it again meanwhile: what is checked is that a lookup after
        // a flush (NOSCRIPT on EVALSHA) succeeds and leaves the script loaded.
        $redis->script('flush');
        self::assertNotNull($fleet->lookup('lookup-3', true));
        self::assertEquals([1], $redis->script('exists', $sha));
        self::assertNotNull($fleet->lookup('lookup-3', true));
    }

    public function testInstancesListsEachInstanceWithItsLoadAndCapacity(): void
    {
        $fleet = self::fleet();
        $fleet->place('lookup-4');
        $instances = $fleet->instances();
        self::assertEqualsCanonicalizing(['wa-1', 'wa-2'], array_map(static fn ($i) => $i->id, $instances));
        foreach ($instances as $i) {
            self::assertTrue($i->live);
            self::assertSame(20, $i->maxSessions);
            self::assertSame('managed', $i->mode);
        }
        self::assertGreaterThanOrEqual(1, array_sum(array_map(static fn ($i) => $i->load, $instances)));
    }

    public function testAStaleCachedOwnerIsReplacedAfterTheInstanceAnswers421(): void
    {
        $cache = new OwnerCache();
        $fleet = self::fleet($cache);
        $fleet->place('lookup-5');
        $owner = self::working($fleet, 'lookup-5');
        $other = $owner->owner === 'wa-1' ? 'wa-2' : 'wa-1';
        // What the cache held before the session moved: the other instance, an older epoch.
        $cache->put(new OwnerInfo('lookup-5', $other, self::$sim->instances[$other]['url'], '1', 'WORKING', 'running', true, '', []));

        $response = $fleet->send('lookup-5', 'GET', '/sessions/lookup-5/ping', ['headers' => ['Authorization' => 'Bearer ' . SimFleet::ADMIN_TOKEN]]);

        self::assertSame(200, $response->getStatusCode());
        self::assertSame($owner->owner, json_decode((string) $response->getBody(), true)['instance']);
        self::assertSame(1, $fleet->stats()['failovers']);
        self::assertSame($owner->owner, $cache->get('lookup-5')?->owner);
    }

    public function testStopAndRestartGoThroughTheInstanceRoutes(): void
    {
        $fleet = self::fleet();
        $fleet->place('lookup-6');
        self::working($fleet, 'lookup-6');
        $stopped = $fleet->stop('lookup-6');
        self::assertSame('stopped', $stopped['desired']);
        $after = $fleet->lookup('lookup-6', true);
        self::assertSame(['', 'stopped', 'stopped by request'], [$after->owner, $after->desired, $after->reason]);

        $fleet->restart('lookup-6');
        self::assertSame('running', self::working($fleet, 'lookup-6')->desired);
    }

    public function testAnAdminCallWithAWrongTokenFailsWithTheInstancesCode(): void
    {
        $fleet = new Fleet(RedisServer::connect(), ['namespace' => self::$sim->namespace, 'adminToken' => str_repeat('x', 40)], new OwnerCache());
        try {
            $fleet->place('lookup-7');
            self::fail('placed');
        } catch (InstanceException $e) {
            self::assertSame(['WAFLEET_UNAUTHORIZED', 401], [$e->errorCode, $e->status]);
        }
    }
}
