<?php

declare(strict_types=1);

namespace Wafleet\Webhook;

use Wafleet\Exception\ConfigException;

/** The (epoch, seq) order of a session's events, as `compareEventOrder` of @wafleet/client. */
final class EventOrder
{
    /**
     * Negative when `$a` is older than `$b`, 0 when equal, positive when newer. Epochs are decimal strings that
     * exceed PHP_INT_MAX one day: compared as big integers (length, then text), then seq. Apply an event only when
     * it compares greater than the last applied one of its session.
     *
     * @param array{epoch: string, seq: int} $a
     * @param array{epoch: string, seq: int} $b
     * @example if ($last !== null && EventOrder::compare($event, $last) <= 0) return; // stale or duplicate
     */
    public static function compare(array $a, array $b): int
    {
        $x = self::epoch($a, 'a');
        $y = self::epoch($b, 'b');
        $byEpoch = (strlen($x) <=> strlen($y)) ?: (strcmp($x, $y) <=> 0);
        return $byEpoch !== 0 ? $byEpoch : ($a['seq'] <=> $b['seq']);
    }

    /** @param array<string, mixed> $event */
    private static function epoch(array $event, string $name): string
    {
        $epoch = $event['epoch'] ?? null;
        if (!is_string($epoch) || preg_match('/^[0-9]+$/D', $epoch) !== 1) {
            throw new ConfigException($name, "Expected `$name.epoch` to be a decimal string");
        }
        if (!is_int($event['seq'] ?? null)) {
            throw new ConfigException($name, "Expected `$name.seq` to be an integer");
        }
        // Leading zeros would make a longer string a smaller number.
        return ltrim($epoch, '0') === '' ? '0' : ltrim($epoch, '0');
    }
}
