<?php

declare(strict_types=1);

namespace Wafleet\Laravel\Commands;

use Illuminate\Console\Command;
use Wafleet\Fleet;

/** `php artisan wafleet:owner <session>`: the registry's answer for one session (never cached). */
final class OwnerCommand extends Command
{
    protected $signature = 'wafleet:owner {session : the session id}';
    protected $description = 'Show the owner, epoch and status of a wafleet session';

    public function handle(Fleet $fleet): int
    {
        $owner = $fleet->lookup((string) $this->argument('session'), true);
        if ($owner === null) {
            $this->error('Unknown session');
            return self::FAILURE;
        }
        $rows = [];
        foreach ($owner->toArray() as $field => $value) {
            $rows[] = [$field, is_bool($value) ? ($value ? 'true' : 'false') : (is_array($value) ? json_encode($value, JSON_UNESCAPED_SLASHES) : (string) $value)];
        }
        $this->table(['field', 'value'], $rows);
        return self::SUCCESS;
    }
}
