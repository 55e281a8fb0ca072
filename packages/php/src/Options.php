<?php

declare(strict_types=1);

namespace Wafleet;

use Wafleet\Exception\ConfigException;
use Wafleet\Registry\Ids;

/** Options of {@see Fleet}, validated once; every default in {@see Options::DEFAULTS}. */
final class Options
{
    /**
     * namespace: the fleet's namespace @default 'default'
     * failoverTimeoutMs: how long `send` waits for a new live WORKING owner after a failure @default 15000
     * leaseTtlMs: the fleet's lease TTL; `requestTimeoutMs` defaults to it @default 6000
     * requestTimeoutMs: one attempt's whole duration; a frozen owner holds a caller no longer @default leaseTtlMs
     * connectTimeoutMs: TCP connect of one attempt @default 2000
     * cacheTtlMs: age after which a cached owner is read again from the registry @default 60000
     * maxCacheEntries: most cached sessions per process @default 10000
     * pollIntervalMs: registry polling while waiting for an owner @default 250
     * adminToken: the instances' admin token (place, stop, restart); null: those calls throw @default null
     */
    public const DEFAULTS = [
        'namespace' => 'default',
        'failoverTimeoutMs' => 15000,
        'leaseTtlMs' => 6000,
        'requestTimeoutMs' => null,
        'connectTimeoutMs' => 2000,
        'cacheTtlMs' => 60000,
        'maxCacheEntries' => 10000,
        'pollIntervalMs' => 250,
        'adminToken' => null,
    ];

    public readonly string $namespace;
    public readonly int $failoverTimeoutMs;
    public readonly int $leaseTtlMs;
    public readonly int $requestTimeoutMs;
    public readonly int $connectTimeoutMs;
    public readonly int $cacheTtlMs;
    public readonly int $maxCacheEntries;
    public readonly int $pollIntervalMs;
    public readonly ?string $adminToken;

    /** @param array<string, mixed> $options */
    public function __construct(array $options = [])
    {
        $unknown = array_diff(array_keys($options), array_keys(self::DEFAULTS));
        if ($unknown !== []) {
            $name = (string) reset($unknown);
            throw new ConfigException($name, "Unknown option `$name`; known: " . implode(', ', array_keys(self::DEFAULTS)));
        }
        $o = $options + self::DEFAULTS;
        $o['requestTimeoutMs'] ??= $o['leaseTtlMs'];
        foreach (['failoverTimeoutMs', 'leaseTtlMs', 'requestTimeoutMs', 'connectTimeoutMs', 'cacheTtlMs', 'maxCacheEntries', 'pollIntervalMs'] as $key) {
            if (!is_int($o[$key]) || $o[$key] < 1) {
                throw new ConfigException($key, "Expected `$key` to be a positive integer, got " . var_export($o[$key], true));
            }
            $this->$key = $o[$key];
        }
        if (!is_string($o['namespace'])) {
            throw new ConfigException('namespace', 'Expected `namespace` to be a string');
        }
        $this->namespace = Ids::namespace($o['namespace']);
        $token = $o['adminToken'];
        if ($token !== null && (!is_string($token) || strlen($token) < 32 || preg_match('/^[\x21-\x7e]+$/D', $token) !== 1)) {
            // Never quote the token.
            throw new ConfigException('adminToken', 'Expected `adminToken` to be at least 32 visible ASCII characters (the instances\' WAFLEET_ADMIN_TOKEN)');
        }
        $this->adminToken = $token;
    }
}
