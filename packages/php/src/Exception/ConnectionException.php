<?php

declare(strict_types=1);

namespace Wafleet\Exception;

/**
 * The request may not have reached, or finished on, the instance (refused, reset, timed out), and it could not
 * be retried: a non-idempotent method without `Idempotency-Key`, or the retry failed too (`WAFLEET_CONNECTION`).
 */
final class ConnectionException extends WafleetException
{
    public function __construct(string $message, ?\Throwable $previous = null)
    {
        parent::__construct('WAFLEET_CONNECTION', $message, $previous);
    }
}
