<?php

declare(strict_types=1);

namespace Wafleet\Http;

use GuzzleHttp\Client;

/**
 * One Guzzle client per instance origin for the life of the process, so its curl handles keep their
 * connections alive across calls (and across requests of one PHP-FPM worker).
 */
final class HttpPool
{
    /** @var array<string, Client> */
    private static array $clients = [];

    public static function for(string $url, int $connectTimeoutMs): Client
    {
        $p = parse_url($url);
        $origin = strtolower(($p['scheme'] ?? '') . '://' . ($p['host'] ?? '') . ':' . ($p['port'] ?? '')) . "|$connectTimeoutMs";
        return self::$clients[$origin] ??= new Client([
            'http_errors' => false,
            // A redirect could leave the origin with the caller's headers.
            'allow_redirects' => false,
            'connect_timeout' => $connectTimeoutMs / 1000,
        ]);
    }
}
