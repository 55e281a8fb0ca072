<?php

declare(strict_types=1);

namespace Wafleet\Exception;

/**
 * A webhook failed verification (`WAFLEET_WEBHOOK_INVALID`). `$reason` names the check, as in the Node
 * `WebhookVerificationError`: `headers`, `timestamp`, `signature` (answer 401) or `body` (answer 400).
 */
final class WebhookException extends WafleetException
{
    public function __construct(public readonly string $reason, string $message)
    {
        parent::__construct('WAFLEET_WEBHOOK_INVALID', $message);
    }
}
