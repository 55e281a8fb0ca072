<?php

declare(strict_types=1);

namespace Wafleet\Laravel\Commands;

use Illuminate\Console\Command;
use Illuminate\Database\DatabaseManager;
use Wafleet\Exception\InvalidIdException;
use Wafleet\Fleet;

/**
 * `php artisan wafleet:sync [--dry-run]`: writes each session's live owner URL into the legacy routing column
 * (config `wafleet.sync`), for code that still reads it. Sessions without a live owner are left as they are.
 */
final class SyncCommand extends Command
{
    protected $signature = 'wafleet:sync {--dry-run : list the mismatches without writing}';
    protected $description = 'Write the live owner URL of every session into the assigned_instance_url column';

    public function handle(Fleet $fleet, DatabaseManager $db): int
    {
        $c = $this->laravel['config']->get('wafleet.sync');
        [$table, $idColumn, $urlColumn] = [$c['table'], $c['id_column'], $c['url_column']];
        $query = $db->connection($c['connection'] ?? null)->table($table);
        $dry = (bool) $this->option('dry-run');
        $mismatches = [];
        $unowned = 0;
        foreach ((clone $query)->select([$idColumn, $urlColumn])->orderBy($idColumn)->cursor() as $row) {
            $sessionId = (string) $row->{$idColumn};
            try {
                $owner = $fleet->lookup($sessionId, true);
            } catch (InvalidIdException) {
                $owner = null; // not a wafleet session id: nothing to sync
            }
            if ($owner === null || !$owner->routable()) {
                $unowned++;
                continue;
            }
            if ($row->{$urlColumn} !== $owner->ownerUrl) {
                $mismatches[] = [$sessionId, (string) $row->{$urlColumn}, $owner->ownerUrl];
            }
        }
        if ($mismatches !== []) {
            $this->table(['session', $urlColumn, 'live owner'], $mismatches);
        }
        if (!$dry) {
            foreach ($mismatches as [$sessionId, , $url]) {
                (clone $query)->where($idColumn, $sessionId)->update([$urlColumn => $url]);
            }
        }
        $this->line(sprintf('%d mismatches %s, %d sessions without a live owner left as they are',
            count($mismatches), $dry ? 'found (dry run: nothing written)' : 'fixed', $unowned));
        return self::SUCCESS;
    }
}
