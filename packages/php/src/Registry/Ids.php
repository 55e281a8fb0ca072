<?php

declare(strict_types=1);

namespace Wafleet\Registry;

use Wafleet\Exception\InvalidIdException;
use Wafleet\Generated\Protocol;

/** The id rules of @wafleet/protocol (generated into {@see Protocol}), so the kit refuses what the registry would refuse. */
final class Ids
{
    public const MAX_SESSION_ID_LENGTH = Protocol::MAX_SESSION_ID_LENGTH;

    /** Returns `$sessionId` when valid: ASCII letters, digits, '_' and '-' (not first), at most 128 characters. */
    public static function session(string $sessionId): string
    {
        if ($sessionId === '') {
            throw new InvalidIdException('Session id must not be empty');
        }
        if (strlen($sessionId) > self::MAX_SESSION_ID_LENGTH) {
            throw new InvalidIdException('Session id must be at most ' . self::MAX_SESSION_ID_LENGTH . ' characters, got ' . strlen($sessionId));
        }
        if (preg_match(Protocol::SESSION_ID_PATTERN, $sessionId) !== 1) {
            throw new InvalidIdException("Session id must be ASCII letters, digits, '_' and '-' (not first)");
        }
        return $sessionId;
    }

    /** Returns `$namespace` when valid: `[A-Za-z0-9._-]{1,64}`. */
    public static function namespace(string $namespace): string
    {
        if (preg_match(Protocol::NAMESPACE_PATTERN, $namespace) !== 1) {
            throw new InvalidIdException('Namespace must be 1 to 64 of [A-Za-z0-9._-]');
        }
        return $namespace;
    }
}
