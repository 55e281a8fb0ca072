<?php

declare(strict_types=1);

namespace Wafleet\Exception;

/** No live, WORKING owner appeared within `failoverTimeoutMs` (`WAFLEET_FAILOVER_TIMEOUT`). */
final class FailoverTimeoutException extends WafleetException
{
    public function __construct(public readonly string $sessionId, public readonly int $waitedMs, ?\Throwable $previous = null)
    {
        parent::__construct('WAFLEET_FAILOVER_TIMEOUT', "No live owner for the session within {$waitedMs} ms", $previous);
    }
}
