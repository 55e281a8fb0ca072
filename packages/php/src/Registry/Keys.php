<?php

declare(strict_types=1);

namespace Wafleet\Registry;

use Wafleet\Generated\Protocol;

/**
 * The registry keys of one namespace (docs/registry.md), built here and nowhere else. All share the hash tag
 * `{wafleet:<ns>}`, so a script's keys live in one Redis Cluster slot.
 */
final class Keys
{
    /** ZSET instance id -> lease deadline (Redis ms). */
    public readonly string $instances;
    /** HASH instance id -> JSON instance record. */
    public readonly string $instanceInfo;
    /** HASH session id -> JSON session record. */
    public readonly string $sessions;
    /** ZSET `<instanceId>:<sessionId>`, all scores 0: the load of each instance. */
    public readonly string $owned;

    public function __construct(public readonly string $namespace = 'default')
    {
        $tag = '{wafleet:' . Ids::namespace($namespace) . '}';
        $suffix = Protocol::KEY_SUFFIXES;
        $this->instances = "$tag:{$suffix['instances']}";
        $this->instanceInfo = "$tag:{$suffix['instanceInfo']}";
        $this->sessions = "$tag:{$suffix['sessions']}";
        $this->owned = "$tag:{$suffix['owned']}";
    }
}
