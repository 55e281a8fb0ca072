<?php

declare(strict_types=1);

namespace Wafleet\Tests\Support;

use GuzzleHttp\Client;

/**
 * `wafleet-sim instance` processes of one namespace on the private Redis, with short test timings: a killed
 * owner's sessions are WORKING elsewhere about lease 2 s + adoption 0.5 s + one sweep + start after the kill.
 */
final class SimFleet
{
    public const ADMIN_TOKEN = 'php-kit-test-admin-token-0123456789abcdef';
    public const LEASE_TTL_MS = 2000;
    private const TIMING = ['--heartbeat-ms', '200', '--lease-ttl-ms', '2000', '--self-fence-ms', '1400', '--adoption-delay-ms', '500', '--sweep-ms', '200'];

    public readonly string $namespace;
    public readonly string $dir;
    public readonly string $sendsFile;
    /** @var array<string, array{pid: int, port: int, url: string, log: string}> */
    public array $instances = [];

    public function __construct(string $prefix)
    {
        $this->namespace = RedisServer::uniqueNamespace($prefix);
        $this->dir = Processes::tmpDir();
        $this->sendsFile = "$this->dir/sends.jsonl";
    }

    /** Starts instances (in parallel) and waits until each is ready. */
    public function start(string ...$ids): void
    {
        $bin = dirname(__DIR__, 4) . '/packages/sim/bin/wafleet-sim.mjs';
        foreach ($ids as $id) {
            $port = Processes::freePort();
            $log = "$this->dir/$id.log";
            $pid = Processes::spawn(
                ['node', $bin, 'instance', '--redis', RedisServer::url(), '--namespace', $this->namespace, '--id', $id,
                    '--port', (string) $port, '--max-sessions', '20', '--sends', $this->sendsFile, ...self::TIMING],
                $log,
                ['WAFLEET_ADMIN_TOKEN' => self::ADMIN_TOKEN],
            );
            $this->instances[$id] = ['pid' => $pid, 'port' => $port, 'url' => "http://127.0.0.1:$port", 'log' => $log];
        }
        foreach ($ids as $id) {
            $log = $this->instances[$id]['log'];
            Processes::waitFor(static fn () => is_file($log) && str_contains((string) file_get_contents($log), '"ev":"ready"'), 15000, "instance $id");
        }
    }

    public function kill(string $id): void
    {
        Processes::kill($this->instances[$id]['pid']);
    }

    /** Kills every instance, so the next test does not share the 2 cores with idle fleets. */
    public function killAll(): void
    {
        foreach (array_keys($this->instances) as $id) {
            $this->kill($id);
        }
    }

    /** The instance's own view of a session (`GET /sessions/:id`), through its admin route. @return array<string, mixed> */
    public function sessionRecord(string $id, string $sessionId): array
    {
        $response = (new Client(['http_errors' => false]))->get($this->instances[$id]['url'] . "/sessions/$sessionId", [
            'headers' => ['Authorization' => 'Bearer ' . self::ADMIN_TOKEN],
        ]);
        return json_decode((string) $response->getBody(), true);
    }

    /** @return list<array{instance: string, session: string, key: string}> executions of POST /messages */
    public function sends(): array
    {
        if (!is_file($this->sendsFile)) {
            return [];
        }
        $lines = array_filter(explode("\n", (string) file_get_contents($this->sendsFile)));
        return array_values(array_map(static fn ($l) => json_decode($l, true), $lines));
    }
}
