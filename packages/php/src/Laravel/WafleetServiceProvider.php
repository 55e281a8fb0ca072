<?php

declare(strict_types=1);

namespace Wafleet\Laravel;

use Illuminate\Contracts\Foundation\Application;
use Illuminate\Support\ServiceProvider;
use Wafleet\Exception\ConfigException;
use Wafleet\Fleet;
use Wafleet\Laravel\Commands\OwnerCommand;
use Wafleet\Laravel\Commands\StatusCommand;
use Wafleet\Laravel\Commands\SyncCommand;

/** Binds {@see Fleet} (facade `Wafleet`) from config/wafleet.php, and registers the artisan commands. */
final class WafleetServiceProvider extends ServiceProvider
{
    public function register(): void
    {
        $this->mergeConfigFrom(dirname(__DIR__, 2) . '/config/wafleet.php', 'wafleet');
        $this->app->singleton(Fleet::class, static function (Application $app): Fleet {
            $config = $app['config']['wafleet'];
            $timeouts = $config['timeouts'] ?? [];
            return new Fleet(self::redis($app, $config['redis'] ?? []), array_filter([
                'namespace' => $config['namespace'] ?? 'default',
                'adminToken' => ($config['admin_token'] ?? null) ?: null,
                'failoverTimeoutMs' => $timeouts['failover_ms'] ?? null,
                'leaseTtlMs' => $timeouts['lease_ttl_ms'] ?? null,
                'requestTimeoutMs' => $timeouts['request_ms'] ?? null,
                'connectTimeoutMs' => $timeouts['connect_ms'] ?? null,
                'cacheTtlMs' => $timeouts['cache_ttl_ms'] ?? null,
            ], static fn ($v) => $v !== null));
        });
        $this->app->alias(Fleet::class, 'wafleet');
    }

    public function boot(): void
    {
        if ($this->app->runningInConsole()) {
            $this->publishes([dirname(__DIR__, 2) . '/config/wafleet.php' => $this->app->configPath('wafleet.php')], 'wafleet-config');
            $this->commands([StatusCommand::class, OwnerCommand::class, SyncCommand::class]);
        }
    }

    /**
     * Laravel's phpredis connection when one is named, else a `Redis` from the URL.
     * @param array<string, mixed> $config
     */
    public static function redis(Application $app, array $config): \Redis
    {
        $name = $config['connection'] ?? null;
        if ($name !== null && $name !== '') {
            $client = $app['redis']->connection($name)->client();
            if (!$client instanceof \Redis) {
                throw new ConfigException('wafleet.redis.connection', "Expected the Redis connection `$name` to use the phpredis client (REDIS_CLIENT=phpredis)");
            }
            return $client;
        }
        return self::redisFromUrl((string) ($config['url'] ?? 'redis://127.0.0.1:6379'));
    }

    /** A phpredis connection from `redis[s]://[user:password@]host[:port][/db]`. */
    public static function redisFromUrl(string $url): \Redis
    {
        $p = parse_url($url);
        if (!is_array($p) || !in_array($p['scheme'] ?? '', ['redis', 'rediss'], true) || !isset($p['host'])) {
            // Never quote the URL: it may carry a password.
            throw new ConfigException('wafleet.redis.url', 'Expected `wafleet.redis.url` to be redis://[user:password@]host[:port][/db] or rediss://...');
        }
        $redis = new \Redis();
        $host = ($p['scheme'] === 'rediss' ? 'tls://' : '') . $p['host'];
        $redis->connect($host, $p['port'] ?? 6379, 2.0);
        if (isset($p['pass'])) {
            $redis->auth(isset($p['user']) && $p['user'] !== '' ? [rawurldecode($p['user']), rawurldecode($p['pass'])] : rawurldecode($p['pass']));
        }
        $db = trim($p['path'] ?? '', '/');
        if ($db !== '') {
            $redis->select((int) $db);
        }
        return $redis;
    }
}
