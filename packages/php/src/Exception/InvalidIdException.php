<?php

declare(strict_types=1);

namespace Wafleet\Exception;

/** A session id or namespace the registry would refuse. Messages never quote the id (often a phone number). */
final class InvalidIdException extends WafleetException
{
    public function __construct(string $message)
    {
        parent::__construct('WAFLEET_INVALID_ID', $message);
    }
}
