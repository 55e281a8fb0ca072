<?php

// Loads the kit without Composer (e.g. with Debian's php-guzzlehttp-guzzle on the include path). Under Composer,
// vendor/autoload.php does the same from composer.json's PSR-4 map.

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'Wafleet\\')) {
        $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, 8)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

if (!class_exists(\GuzzleHttp\Client::class) && stream_resolve_include_path('GuzzleHttp/autoload.php') !== false) {
    require_once 'GuzzleHttp/autoload.php';
}
