<?php

declare(strict_types=1);

namespace Wafleet\Tests\Support;

/** Child processes of the test run: every one is SIGKILLed (SIGCONT first) when the run ends, whatever happens. */
final class Processes
{
    /** @var array<int, resource> pid => proc_open handle */
    private static array $children = [];
    private static bool $hooked = false;

    /**
     * Starts `$argv` with stdout to `$log` and returns its pid.
     * @param list<string> $argv
     * @param array<string, string> $env
     */
    public static function spawn(array $argv, string $log, array $env = []): int
    {
        if (!self::$hooked) {
            self::$hooked = true;
            register_shutdown_function([self::class, 'killAll']);
        }
        $proc = proc_open($argv, [0 => ['file', '/dev/null', 'r'], 1 => ['file', $log, 'a'], 2 => ['file', $log, 'a']], $pipes, null, $env + getenv());
        if (!is_resource($proc)) {
            throw new \RuntimeException('Could not start ' . $argv[0]);
        }
        $pid = proc_get_status($proc)['pid'];
        self::$children[$pid] = $proc;
        return $pid;
    }

    public static function signal(int $pid, int $signal): void
    {
        posix_kill($pid, $signal);
    }

    /** SIGKILL, then reap, so the port and the lease are really gone. */
    public static function kill(int $pid): void
    {
        $proc = self::$children[$pid] ?? null;
        posix_kill($pid, SIGCONT);
        posix_kill($pid, SIGKILL);
        if ($proc !== null) {
            proc_close($proc);
            unset(self::$children[$pid]);
        }
    }

    public static function killAll(): void
    {
        foreach (array_keys(self::$children) as $pid) {
            self::kill($pid);
        }
    }

    public static function freePort(): int
    {
        $socket = stream_socket_server('tcp://127.0.0.1:0');
        $name = stream_socket_get_name($socket, false);
        fclose($socket);
        return (int) substr((string) $name, strrpos((string) $name, ':') + 1);
    }

    /** Polls `$check` until it returns a truthy value or `$timeoutMs` passes. */
    public static function waitFor(callable $check, int $timeoutMs, string $what): mixed
    {
        $deadline = microtime(true) + $timeoutMs / 1000;
        do {
            $value = $check();
            if ($value) {
                return $value;
            }
            usleep(50_000);
        } while (microtime(true) < $deadline);
        throw new \RuntimeException("Timed out after $timeoutMs ms waiting for $what");
    }

    public static function tmpDir(): string
    {
        $dir = sys_get_temp_dir() . '/wafleet-php-' . bin2hex(random_bytes(4));
        mkdir($dir, 0700, true);
        return $dir;
    }
}
