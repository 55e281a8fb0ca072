<?php

declare(strict_types=1);

namespace Wafleet\Exception;

/** A bad option or argument; `$option` names what to change. Nothing was sent. */
final class ConfigException extends WafleetException
{
    public function __construct(public readonly string $option, string $message)
    {
        parent::__construct('WAFLEET_CONFIG', $message);
    }
}
