<?php

declare(strict_types=1);

namespace Wafleet\Tests\Integration;

use Illuminate\Contracts\Console\Kernel;
use Illuminate\Foundation\Application;
use Illuminate\Http\Request;
use PHPUnit\Framework\TestCase;
use Wafleet\Fleet;
use Wafleet\Laravel\Facades\Wafleet;
use Wafleet\Laravel\Middleware\VerifyWafleetWebhook;
use Wafleet\Tests\Support\LaravelApp;
use Wafleet\Tests\Support\Processes;
use Wafleet\Tests\Support\RedisServer;
use Wafleet\Tests\Support\SimFleet;

/** The Laravel integration in a Laravel 8 application booted from Debian's framework, against a real fleet. */
final class LaravelTest extends TestCase
{
    private static SimFleet $sim;
    private static string $sqlite;
    private static Application $app;
    private const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    private const LEGACY_SECRET = 'legacy-secret-123';

    public static function setUpBeforeClass(): void
    {
        self::$sim = new SimFleet('php-laravel');
        self::$sim->start('wa-1', 'wa-2');
        self::$sqlite = self::$sim->dir . '/app.sqlite';
        touch(self::$sqlite);
        self::$app = self::boot(['redis' => ['connection' => 'wafleet']]);
        $fleet = self::$app->make(Fleet::class);
        foreach (['sync-0', 'sync-1', 'sync-2'] as $s) {
            $fleet->place($s);
        }
        foreach (['sync-0', 'sync-1', 'sync-2'] as $s) {
            Processes::waitFor(static fn () => $fleet->lookup($s, true)?->live, 8000, "$s placed");
        }
    }

    public static function tearDownAfterClass(): void
    {
        self::$sim->killAll();
    }

    /** @param array<string, mixed> $wafleet */
    private static function boot(array $wafleet): Application
    {
        return LaravelApp::boot(array_replace_recursive([
            'namespace' => self::$sim->namespace,
            'admin_token' => SimFleet::ADMIN_TOKEN,
            'webhooks' => ['secrets' => [self::SECRET], 'legacy_secrets' => [self::LEGACY_SECRET]],
            'timeouts' => ['lease_ttl_ms' => SimFleet::LEASE_TTL_MS, 'failover_ms' => 6000],
        ], $wafleet), self::$sqlite);
    }

    /** @param array<string, mixed> $arguments */
    private static function artisan(Application $app, string $command, array $arguments = []): array
    {
        $kernel = $app->make(Kernel::class);
        $exit = $kernel->call($command, $arguments);
        return [$exit, $kernel->output()];
    }

    public function testWafleetStatusListsEveryInstanceWithItsLoadAndLiveness(): void
    {
        [$exit, $out] = self::artisan(self::$app, 'wafleet:status');
        self::assertSame(0, $exit);
        self::assertStringContainsString(self::$sim->instances['wa-1']['url'], $out);
        self::assertStringContainsString(self::$sim->instances['wa-2']['url'], $out);
        self::assertMatchesRegularExpression('#2 instances, 2 live, 3/40 sessions#', $out);
    }

    public function testWafleetOwnerShowsTheRegistrysAnswerAndFailsForAnUnknownSession(): void
    {
        $owner = Wafleet::lookup('sync-0', true);
        [$exit, $out] = self::artisan(self::$app, 'wafleet:owner', ['session' => 'sync-0']);
        self::assertSame(0, $exit);
        self::assertStringContainsString($owner->ownerUrl, $out);
        self::assertStringContainsString($owner->epoch, $out);
        self::assertSame(1, self::artisan(self::$app, 'wafleet:owner', ['session' => 'never-placed'])[0]);
    }

    public function testWafleetSyncListsMismatchesOnADryRunAndThenWritesTheLiveOwnersUrl(): void
    {
        $fleet = self::$app->make(Fleet::class);
        $db = self::$app['db']->connection();
        $db->statement('CREATE TABLE whatsapp_sessions (id TEXT PRIMARY KEY, assigned_instance_url TEXT NULL, status TEXT NULL)');
        $db->table('whatsapp_sessions')->insert([
            ['id' => 'sync-0', 'assigned_instance_url' => $fleet->lookup('sync-0', true)->ownerUrl, 'status' => 'WORKING'],
            ['id' => 'sync-1', 'assigned_instance_url' => 'http://wa-old.internal:3000', 'status' => 'WORKING'],
            ['id' => 'sync-2', 'assigned_instance_url' => null, 'status' => null],
            ['id' => 'legacy-only', 'assigned_instance_url' => 'http://wa-old.internal:3000', 'status' => null],
        ]);
        $urls = static fn () => $db->table('whatsapp_sessions')->orderBy('id')->pluck('assigned_instance_url', 'id')->all();
        $before = $urls();

        [$exit, $out] = self::artisan(self::$app, 'wafleet:sync', ['--dry-run' => true]);
        self::assertSame(0, $exit);
        self::assertStringContainsString('sync-1', $out);
        self::assertStringContainsString('sync-2', $out);
        self::assertStringContainsString('2 mismatches found (dry run: nothing written), 1 sessions without a live owner', $out);
        self::assertSame($before, $urls());

        self::artisan(self::$app, 'wafleet:sync');
        $after = $urls();
        foreach (['sync-0', 'sync-1', 'sync-2'] as $s) {
            self::assertSame($fleet->lookup($s, true)->ownerUrl, $after[$s]);
        }
        self::assertSame('http://wa-old.internal:3000', $after['legacy-only']);
        self::assertStringContainsString('0 mismatches', self::artisan(self::$app, 'wafleet:sync', ['--dry-run' => true])[1]);
    }

    public function testARedisUrlWorksWhenNoLaravelConnectionIsNamed(): void
    {
        $app = self::boot(['redis' => ['connection' => null, 'url' => RedisServer::url()]]);
        self::assertStringContainsString('2 live', self::artisan($app, 'wafleet:status')[1]);
    }

    private static function standardRequest(string $body, string $secret = self::SECRET): Request
    {
        $id = 'evt_01K7BQ6Y3M8R2T5V9W4X6Z1A2B';
        $ts = (string) time();
        $sig = base64_encode(hash_hmac('sha256', "$id.$ts.$body", base64_decode(substr($secret, 6)), true));
        return Request::create('/webhooks/wafleet', 'POST', [], [], [], [
            'HTTP_WEBHOOK_ID' => $id, 'HTTP_WEBHOOK_TIMESTAMP' => $ts, 'HTTP_WEBHOOK_SIGNATURE' => "v1,$sig", 'CONTENT_TYPE' => 'application/json',
        ], $body);
    }

    private static function envelope(): string
    {
        return json_encode([
            'id' => 'evt_01K7BQ6Y3M8R2T5V9W4X6Z1A2B', 'type' => 'session.status', 'timestamp' => '2025-10-09T08:53:19.412Z',
            'session' => 'sync-0', 'epoch' => '1802240000000017', 'seq' => 42,
            'instance' => ['id' => 'wa-1', 'url' => 'http://wa-1:3000'], 'data' => ['status' => 'WORKING', 'previous' => 'STARTING'],
        ], JSON_UNESCAPED_SLASHES);
    }

    /** @return array{0: int, 1: mixed} status and the event the route saw */
    private static function through(Application $app, Request $request): array
    {
        $seen = null;
        $response = $app->make(VerifyWafleetWebhook::class)->handle($request, static function (Request $r) use (&$seen) {
            $seen = $r->attributes->get('wafleet_event');
            return new \Illuminate\Http\Response('', 204);
        });
        return [$response->getStatusCode(), $seen ?? json_decode((string) $response->getContent(), true)];
    }

    public function testTheWebhookMiddlewarePassesAnAuthenticStandardWebhookAndAnswers401Or400Otherwise(): void
    {
        [$status, $event] = self::through(self::$app, self::standardRequest(self::envelope()));
        self::assertSame([204, 42], [$status, $event['seq']]);

        $tampered = self::standardRequest(self::envelope());
        $tampered = Request::create('/webhooks/wafleet', 'POST', [], [], [], $tampered->server->all(), str_replace('WORKING', 'STOPPED', self::envelope()));
        self::assertSame([401, ['error' => 'WAFLEET_WEBHOOK_INVALID', 'reason' => 'signature']], self::through(self::$app, $tampered));

        self::assertSame([400, ['error' => 'WAFLEET_WEBHOOK_INVALID', 'reason' => 'body']], self::through(self::$app, self::standardRequest('[1]')));
    }

    public function testTheWebhookMiddlewareVerifiesTheLegacySchemeWhenConfigured(): void
    {
        $app = self::boot(['webhooks' => ['scheme' => 'legacy']]);
        $body = '{"event":"session_ready","session_id":"sync-0","id":"evt_1","epoch":"17","seq":1,"data":{}}';
        $ts = (string) time();
        $request = static fn (string $sig) => Request::create('/webhook', 'POST', [], [], [], ['HTTP_X_TIMESTAMP' => $ts, 'HTTP_X_HMAC_SIGNATURE' => $sig], $body);
        self::assertSame(204, self::through($app, $request(hash_hmac('sha256', $ts . $body, self::LEGACY_SECRET)))[0]);
        self::assertSame(401, self::through($app, $request(hash_hmac('sha256', $ts . $body, 'another-secret')))[0]);
    }
}
