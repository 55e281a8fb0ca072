<?php

declare(strict_types=1);

namespace Wafleet\Tests\Integration;

use PHPUnit\Framework\TestCase;
use Wafleet\Cache\OwnerCache;
use Wafleet\Exception\ConnectionException;
use Wafleet\Fleet;
use Wafleet\Registry\OwnerInfo;
use Wafleet\Tests\Support\Processes;
use Wafleet\Tests\Support\RedisServer;
use Wafleet\Tests\Support\SimFleet;

/**
 * send() at a steady rate while an owner is killed (kill -9) or frozen (SIGSTOP) longer than its lease, against
 * real wafleet-sim instances whose POST /messages journals every execution with its Idempotency-Key.
 */
final class FailoverTest extends TestCase
{
    private const FAILOVER_TIMEOUT_MS = 6000;

    private ?SimFleet $sim = null;

    protected function tearDown(): void
    {
        $this->sim?->killAll();
    }

    private static function fleet(SimFleet $sim): Fleet
    {
        return new Fleet(RedisServer::connect(), [
            'namespace' => $sim->namespace,
            'adminToken' => SimFleet::ADMIN_TOKEN,
            'leaseTtlMs' => SimFleet::LEASE_TTL_MS,
            'failoverTimeoutMs' => self::FAILOVER_TIMEOUT_MS,
        ], new OwnerCache());
    }

    /** The documented bound of one send: one attempt, then the failover wait and the retry. */
    private static function boundMs(Fleet $fleet): int
    {
        return $fleet->options->requestTimeoutMs + $fleet->options->failoverTimeoutMs;
    }

    /** @param list<string> $sessions */
    private static function placeAll(Fleet $fleet, array $sessions): void
    {
        foreach ($sessions as $s) {
            $fleet->place($s);
        }
        foreach ($sessions as $s) {
            Processes::waitFor(static function () use ($fleet, $s) {
                $o = $fleet->lookup($s, true);
                return $o !== null && $o->live && $o->status === 'WORKING';
            }, 10000, "$s WORKING");
        }
    }

    /**
     * Sends `$count` messages round-robin over `$sessions`, one every `$intervalMs`, calling `$at[$i]` before send $i.
     * @param list<string> $sessions
     * @param array<int, callable> $at
     * @return array{failures: list<string>, keys: list<string>, slowestMs: float}
     */
    private static function steadySends(Fleet $fleet, array $sessions, int $count, int $intervalMs, array $at): array
    {
        $failures = [];
        $keys = [];
        $slowest = 0.0;
        for ($i = 0; $i < $count; $i++) {
            if (isset($at[$i])) {
                $at[$i]();
            }
            $session = $sessions[$i % count($sessions)];
            $key = "key-$i-" . bin2hex(random_bytes(4));
            $t0 = hrtime(true);
            try {
                $response = $fleet->send($session, 'POST', "/sessions/$session/messages", [
                    'headers' => ['Authorization' => 'Bearer ' . SimFleet::ADMIN_TOKEN, 'Idempotency-Key' => $key],
                    'json' => ['to' => '5511888880000', 'text' => "message $i"],
                ]);
                if ($response->getStatusCode() !== 201) {
                    $failures[] = "$i: {$response->getStatusCode()} {$response->getBody()}";
                }
            } catch (\Throwable $e) {
                $failures[] = "$i: " . get_class($e) . ' ' . $e->getMessage();
            }
            $slowest = max($slowest, (hrtime(true) - $t0) / 1e6);
            $keys[] = $key;
            usleep($intervalMs * 1000);
        }
        return ['failures' => $failures, 'keys' => $keys, 'slowestMs' => $slowest];
    }

    /**
     * @param list<string> $keys
     * @return array{executions: int, duplicates: int, missing: int}
     */
    private static function journal(SimFleet $sim, array $keys): array
    {
        $executed = array_column($sim->sends(), 'key');
        return [
            'executions' => count($executed),
            'duplicates' => count($executed) - count(array_unique($executed)),
            'missing' => count(array_diff($keys, $executed)),
        ];
    }

    private static function report(string $name, array $run, array $journal, int $bound, array $stats): void
    {
        fwrite(STDERR, sprintf(
            "\n[%s] sends=%d failed=%d executions=%d duplicates=%d missing=%d failovers=%d slowest=%.0fms bound=%dms\n",
            $name, count($run['keys']), count($run['failures']), $journal['executions'], $journal['duplicates'], $journal['missing'], $stats['failovers'], $run['slowestMs'], $bound,
        ));
    }

    public function testSendsAtASteadyRateLoseNothingAndRunOnceWhenTheOwnerIsKilledMidRun(): void
    {
        $sim = $this->sim = new SimFleet('php-kill');
        $sim->start('wa-1', 'wa-2', 'wa-3');
        $fleet = self::fleet($sim);
        $sessions = ['kill-0', 'kill-1', 'kill-2'];
        self::placeAll($fleet, $sessions);
        /** @var OwnerInfo $victim */
        $victim = $fleet->lookup('kill-0', true);

        $run = self::steadySends($fleet, $sessions, 60, 20, [20 => static fn () => $sim->kill($victim->owner)]);
        $journal = self::journal($sim, $run['keys']);
        self::report('kill -9', $run, $journal, self::boundMs($fleet), $fleet->stats());

        self::assertSame([], $run['failures']);
        self::assertSame(['executions' => 60, 'duplicates' => 0, 'missing' => 0], $journal);
        self::assertGreaterThanOrEqual(1, $fleet->stats()['failovers']);
        $now = $fleet->lookup('kill-0', true);
        self::assertNotSame($victim->owner, $now->owner);
        self::assertLessThan(self::boundMs($fleet), $run['slowestMs']);
    }

    public function testAFrozenOwnerHoldsNoSendBeyondTheFailoverBoundAndNothingRunsTwice(): void
    {
        $sim = $this->sim = new SimFleet('php-stop');
        $sim->start('wa-1', 'wa-2');
        $fleet = self::fleet($sim);
        $sessions = ['pause-0', 'pause-1'];
        self::placeAll($fleet, $sessions);
        $victim = $fleet->lookup('pause-0', true);
        $pid = $sim->instances[$victim->owner]['pid'];
        // Frozen for 1.75 leases: it loses its lease while a send waits on it, then wakes up fenced.
        $freezeMs = (int) (SimFleet::LEASE_TTL_MS * 1.75);
        $freeze = static function () use ($pid, $freezeMs): void {
            Processes::signal($pid, SIGSTOP);
            exec(sprintf('(sleep %.3f; kill -CONT %d) > /dev/null 2>&1 &', $freezeMs / 1000, $pid));
        };

        $run = self::steadySends($fleet, $sessions, 40, 20, [10 => $freeze]);
        $journal = self::journal($sim, $run['keys']);
        self::report('SIGSTOP', $run, $journal, self::boundMs($fleet), $fleet->stats());

        self::assertSame([], $run['failures']);
        self::assertSame(['executions' => 40, 'duplicates' => 0, 'missing' => 0], $journal);
        self::assertGreaterThanOrEqual(1, $fleet->stats()['failovers']);
        self::assertLessThan(self::boundMs($fleet), $run['slowestMs']);
    }

    public function testAPostWithoutIdempotencyKeyIsNotRetriedAfterAConnectionFailure(): void
    {
        $sim = $this->sim = new SimFleet('php-noretry');
        $sim->start('wa-1');
        $fleet = self::fleet($sim);
        self::placeAll($fleet, ['noretry-0']);
        $fleet->lookup('noretry-0');
        $sim->kill('wa-1');

        try {
            $fleet->send('noretry-0', 'POST', '/sessions/noretry-0/messages', ['json' => ['text' => 'once at most']]);
            self::fail('sent');
        } catch (ConnectionException $e) {
            self::assertSame('WAFLEET_CONNECTION', $e->errorCode);
            self::assertStringNotContainsString('noretry-0', $e->getMessage(), 'messages never quote a session id');
        }
        self::assertSame(0, $fleet->stats()['failovers']);
    }

    public function testIdempotentTrueSendsAGeneratedIdempotencyKey(): void
    {
        $sim = $this->sim = new SimFleet('php-idem');
        $sim->start('wa-1');
        $fleet = self::fleet($sim);
        self::placeAll($fleet, ['idem-0']);
        $response = $fleet->send('idem-0', 'POST', '/sessions/idem-0/messages', [
            'headers' => ['Authorization' => 'Bearer ' . SimFleet::ADMIN_TOKEN],
            'json' => ['text' => 'hi'],
            'idempotent' => true,
        ]);
        self::assertSame(201, $response->getStatusCode());
        self::assertMatchesRegularExpression('/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/', $sim->sends()[0]['key']);
    }
}
