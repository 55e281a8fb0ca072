<?php

declare(strict_types=1);

namespace Wafleet\Webhook;

use Wafleet\Exception\WebhookException;

/** Header lookups over a plain array (`name => value | list of values`), whatever the case of the names. */
final class Headers
{
    /**
     * @param array<string, string|list<string>|null> $headers
     * @return list<string>
     */
    public static function values(array $headers, string $name): array
    {
        $out = [];
        foreach ($headers as $key => $value) {
            if (strtolower((string) $key) !== $name) {
                continue;
            }
            foreach ((array) $value as $v) {
                if (is_string($v)) {
                    $out[] = $v;
                }
            }
        }
        return $out;
    }

    /**
     * The one value of a header; two different values cannot both be what was signed.
     * @param array<string, string|list<string>|null> $headers
     */
    public static function single(array $headers, string $name): string
    {
        $values = array_values(array_unique(array_filter(array_map('trim', self::values($headers, $name)), static fn ($v) => $v !== '')));
        if ($values === []) {
            throw new WebhookException('headers', "Missing the $name header");
        }
        if (count($values) > 1) {
            throw new WebhookException('headers', "Conflicting values of the $name header");
        }
        return $values[0];
    }

    /** Unix seconds within `$tolerance` of `$now`, either way. */
    public static function checkTimestamp(string $timestamp, int $now, int $tolerance, string $name): void
    {
        if (preg_match('/^[0-9]{1,15}$/D', $timestamp) !== 1) {
            throw new WebhookException('timestamp', "Expected $name to be unix seconds");
        }
        // Each attempt is signed afresh: a stale timestamp means a replayed capture or a clock far off.
        $skew = (int) $timestamp - $now;
        if (abs($skew) > $tolerance) {
            $when = $skew < 0 ? -$skew . ' s in the past' : "$skew s in the future";
            throw new WebhookException('timestamp', "$name is $when; tolerance is $tolerance s");
        }
    }
}
