<?php

declare(strict_types=1);

namespace Wafleet\Tests\Support;

/** One private redis-server on a free port for the whole run (never the Redis on 6379); tests use unique namespaces. */
final class RedisServer
{
    private static ?int $port = null;

    public static function port(): int
    {
        if (self::$port === null) {
            $port = Processes::freePort();
            $dir = Processes::tmpDir();
            Processes::spawn(['redis-server', '--port', (string) $port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', $dir], "$dir/redis.log");
            Processes::waitFor(static function () use ($port) {
                try {
                    $r = new \Redis();
                    return @$r->connect('127.0.0.1', $port, 0.2) && $r->ping();
                } catch (\RedisException) {
                    return false;
                }
            }, 5000, 'redis-server');
            self::$port = $port;
        }
        return self::$port;
    }

    public static function url(): string
    {
        return 'redis://127.0.0.1:' . self::port();
    }

    public static function connect(): \Redis
    {
        $r = new \Redis();
        $r->connect('127.0.0.1', self::port(), 2.0);
        return $r;
    }

    public static function uniqueNamespace(string $prefix): string
    {
        return $prefix . '-' . bin2hex(random_bytes(4));
    }
}
