<?php

declare(strict_types=1);

namespace Wafleet\Http;

use Wafleet\Exception\ConfigException;

/**
 * Appends a path to an instance's base URL and proves the result stays on its origin and under its base path.
 * Never URI resolution: `/http://evil/`, `//evil`, `/\evil` or `/../` must not carry the caller's headers
 * (tokens included) anywhere else. Paths with dot segments or backslashes are refused rather than normalised.
 */
final class OwnerUrl
{
    /** Throws {@see ConfigException} (option `path`) unless `$path` is a plain absolute path. */
    public static function checkPath(string $path): void
    {
        $bare = explode('?', $path, 2)[0];
        $bad = !str_starts_with($path, '/')
            || str_starts_with($path, '//')
            || strpbrk($path, "\\#") !== false
            || preg_match('/[\x00-\x20\x7f]/', $path) === 1
            || preg_match('#(^|/)(\.|%2e){1,2}(/|$)#i', $bare) === 1;
        if ($bad) {
            throw new ConfigException('path', 'Expected `path` to be a path starting with a single \'/\', without dot segments, backslashes, white space or fragment');
        }
    }

    /** `$base . $path`, checked: same scheme, host and port as `$base`, path under the base path. */
    public static function under(string $base, string $path): string
    {
        self::checkPath($path);
        $url = rtrim($base, '/') . $path;
        $b = parse_url($base . '/');
        $u = parse_url($url);
        $same = is_array($b) && is_array($u)
            && isset($b['scheme'], $b['host'], $u['scheme'], $u['host'])
            && strtolower($u['scheme']) === strtolower($b['scheme'])
            && strtolower($u['host']) === strtolower($b['host'])
            && ($u['port'] ?? null) === ($b['port'] ?? null)
            && ($u['user'] ?? null) === ($b['user'] ?? null)
            && str_starts_with($u['path'] ?? '', rtrim($b['path'] ?? '/', '/') . '/');
        if (!$same) {
            throw new ConfigException('path', 'Expected `path` to stay on the instance\'s origin and base path');
        }
        return $url;
    }
}
