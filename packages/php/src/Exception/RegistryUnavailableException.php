<?php

declare(strict_types=1);

namespace Wafleet\Exception;

/** Redis could not be reached or refused a command (`WAFLEET_REDIS_UNAVAILABLE`), or replied what no script replies (`WAFLEET_REDIS_REPLY`). */
final class RegistryUnavailableException extends WafleetException
{
    public function __construct(string $message, ?\Throwable $previous = null, string $code = 'WAFLEET_REDIS_UNAVAILABLE')
    {
        parent::__construct($code, $message, $previous);
    }
}
