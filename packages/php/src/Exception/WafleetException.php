<?php

declare(strict_types=1);

namespace Wafleet\Exception;

/**
 * Base of every exception the kit throws. Branch on {@see $errorCode}, a stable string shared with the Node
 * packages (`WAFLEET_FAILOVER_TIMEOUT`, ...); messages may change between releases.
 */
class WafleetException extends \RuntimeException
{
    public function __construct(public readonly string $errorCode, string $message, ?\Throwable $previous = null)
    {
        parent::__construct($message, 0, $previous);
    }
}
