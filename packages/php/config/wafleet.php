<?php

// wafleet: `php artisan vendor:publish --tag=wafleet-config` copies this file to config/wafleet.php.

return [
    // Where the registry lives. `connection`: a phpredis connection of config/database.php's `redis` section
    // with its own 'options' => ['prefix' => ''] (Laravel 8 applies the shared `options.prefix` otherwise) and no
    // serializer: wafleet's keys must be used as they are. Without one, `url` is used:
    // redis://[user:password@]host:port[/db], rediss:// for TLS.
    'redis' => [
        'connection' => env('WAFLEET_REDIS_CONNECTION'),
        'url' => env('WAFLEET_REDIS_URL', 'redis://127.0.0.1:6379'),
    ],

    // The fleet's namespace (createFleet's `namespace`).
    'namespace' => env('WAFLEET_NAMESPACE', 'default'),

    // The instances' admin token (their WAFLEET_ADMIN_TOKEN, 32+ characters): place, stop and restart need it.
    'admin_token' => env('WAFLEET_ADMIN_TOKEN'),

    'webhooks' => [
        // 'standard' (Standard Webhooks, the outbox default) or 'legacy' (legacyHmacSigner).
        'scheme' => env('WAFLEET_WEBHOOK_SCHEME', 'standard'),
        // whsec_ secrets, comma-separated: the new one first during a rotation.
        'secrets' => array_values(array_filter(explode(',', (string) env('WAFLEET_WEBHOOK_SECRETS', '')))),
        // Legacy HMAC secrets, comma-separated (old and new only while switching).
        'legacy_secrets' => array_values(array_filter(explode(',', (string) env('WAFLEET_WEBHOOK_LEGACY_SECRETS', '')))),
        'tolerance_seconds' => 300,
    ],

    'timeouts' => [
        // How long send() waits for a new live WORKING owner after a failure.
        'failover_ms' => (int) env('WAFLEET_FAILOVER_TIMEOUT_MS', 15000),
        // The fleet's leaseTtlMs (6000, or 45000 with the `tolerant` profile); request_ms defaults to it.
        'lease_ttl_ms' => (int) env('WAFLEET_LEASE_TTL_MS', 6000),
        'request_ms' => env('WAFLEET_REQUEST_TIMEOUT_MS') === null ? null : (int) env('WAFLEET_REQUEST_TIMEOUT_MS'),
        'connect_ms' => 2000,
        // Longest life of a cached owner in a PHP process.
        'cache_ttl_ms' => (int) env('WAFLEET_CACHE_TTL_MS', 60000),
    ],

    // wafleet:sync writes each session's live owner URL into this table (the legacy routing column).
    'sync' => [
        'connection' => null,
        'table' => 'whatsapp_sessions',
        'id_column' => 'id',
        'url_column' => 'assigned_instance_url',
    ],
];
