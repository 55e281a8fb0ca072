<?php

declare(strict_types=1);

namespace Wafleet\Exception;

/**
 * An instance refused an admin call (place, stop, restart). `$errorCode` is the instance's own code
 * (`WAFLEET_UNAUTHORIZED`: check `admin_token`; `WAFLEET_CONFIG`: bad labels or metadata; `WAFLEET_NOT_FOUND`...).
 */
final class InstanceException extends WafleetException
{
    public function __construct(string $errorCode, public readonly int $status, string $message)
    {
        parent::__construct($errorCode, $message);
    }
}
