<?php

declare(strict_types=1);

namespace Wafleet\Tests\Support;

use Illuminate\Contracts\Console\Kernel;
use Illuminate\Foundation\Application;

/** A Laravel 8 application booted from Debian's framework, with the wafleet provider and an sqlite database. */
final class LaravelApp
{
    /** @param array<string, mixed> $wafleet config/wafleet.php overrides */
    public static function boot(array $wafleet, string $sqlite): Application
    {
        require_once 'Illuminate/autoload.php';
        $base = Processes::tmpDir();
        mkdir("$base/config");
        mkdir("$base/bootstrap/cache", 0700, true);
        mkdir("$base/storage/logs", 0700, true);
        $export = static fn (array $config) => '<?php return ' . var_export($config, true) . ';';
        file_put_contents("$base/config/app.php", $export([
            'name' => 'wafleet-test',
            'env' => 'testing',
            'debug' => true,
            'key' => 'base64:' . base64_encode(random_bytes(32)),
            'cipher' => 'AES-256-CBC',
            'providers' => [
                \Illuminate\Database\DatabaseServiceProvider::class,
                \Illuminate\Filesystem\FilesystemServiceProvider::class,
                \Illuminate\Redis\RedisServiceProvider::class,
                \Wafleet\Laravel\WafleetServiceProvider::class,
            ],
            'aliases' => ['Wafleet' => \Wafleet\Laravel\Facades\Wafleet::class],
        ]));
        file_put_contents("$base/config/database.php", $export([
            'default' => 'sqlite',
            'connections' => ['sqlite' => ['driver' => 'sqlite', 'database' => $sqlite, 'prefix' => '']],
            'redis' => [
                'client' => 'phpredis',
                // Laravel's default prefix, which the wafleet connection overrides in its own 'options' (Laravel 8 merges them last).
                'options' => ['prefix' => 'laravel_database_'],
                'wafleet' => ['host' => '127.0.0.1', 'port' => RedisServer::port(), 'database' => 0, 'options' => ['prefix' => '']],
            ],
        ]));
        file_put_contents("$base/config/logging.php", $export(['default' => 'null', 'channels' => ['null' => ['driver' => 'monolog', 'handler' => \Monolog\Handler\NullHandler::class]]]));
        file_put_contents("$base/config/wafleet.php", $export(array_replace_recursive(require dirname(__DIR__, 2) . '/config/wafleet.php', $wafleet)));

        $app = new Application($base);
        $app->singleton(Kernel::class, \Illuminate\Foundation\Console\Kernel::class);
        $app->singleton(\Illuminate\Contracts\Debug\ExceptionHandler::class, \Illuminate\Foundation\Exceptions\Handler::class);
        $app->make(Kernel::class)->bootstrap();
        return $app;
    }
}
