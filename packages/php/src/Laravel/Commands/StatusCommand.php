<?php

declare(strict_types=1);

namespace Wafleet\Laravel\Commands;

use Illuminate\Console\Command;
use Wafleet\Fleet;

/** `php artisan wafleet:status`: every registered instance with its load, capacity and liveness. */
final class StatusCommand extends Command
{
    protected $signature = 'wafleet:status';
    protected $description = 'List the wafleet instances with their load, capacity and liveness';

    public function handle(Fleet $fleet): int
    {
        $instances = $fleet->instances();
        $this->table(['instance', 'url', 'load', 'live', 'mode', 'draining'], array_map(static fn ($i) => [
            $i->id, $i->url, "{$i->load}/{$i->maxSessions}", $i->live ? 'yes' : 'no', $i->mode, $i->draining ? 'yes' : 'no',
        ], $instances));
        $live = array_filter($instances, static fn ($i) => $i->live);
        $this->line(sprintf('%d instances, %d live, %d/%d sessions', count($instances), count($live),
            array_sum(array_map(static fn ($i) => $i->load, $live)), array_sum(array_map(static fn ($i) => $i->maxSessions, $live))));
        return self::SUCCESS;
    }
}
