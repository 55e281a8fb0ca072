<?php

declare(strict_types=1);

namespace Wafleet;

use GuzzleHttp\Exception\TransferException;
use Psr\Http\Message\ResponseInterface;
use Wafleet\Cache\OwnerCache;
use Wafleet\Exception\ConfigException;
use Wafleet\Exception\ConnectionException;
use Wafleet\Exception\FailoverTimeoutException;
use Wafleet\Exception\InstanceException;
use Wafleet\Generated\Protocol;
use Wafleet\Http\HttpPool;
use Wafleet\Http\OwnerUrl;
use Wafleet\Registry\Ids;
use Wafleet\Registry\InstanceInfo;
use Wafleet\Registry\Keys;
use Wafleet\Registry\OwnerInfo;
use Wafleet\Registry\Registry;

/**
 * The PHP side of a wafleet fleet: finds a session's live owner (the registry's own Lua lookup, cached per process),
 * sends requests to it with failover, and places, stops or restarts sessions through the instances' admin routes.
 * It never writes the registry.
 *
 * @example
 * $fleet = new Fleet(new Redis(), ['namespace' => 'default', 'adminToken' => getenv('WAFLEET_ADMIN_TOKEN')]);
 * $response = $fleet->send('5511999990000', 'POST', '/sessions/5511999990000/messages',
 *     ['json' => ['to' => '5511888880000', 'text' => 'hi'], 'idempotent' => true]);
 */
final class Fleet
{
    /** RFC 9110 idempotent methods: safe to send twice. */
    private const IDEMPOTENT = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'];
    private const SEND_OPTIONS = ['headers', 'json', 'body', 'query', 'idempotent'];

    public readonly Options $options;
    public readonly Keys $keys;
    private readonly Registry $registry;
    private readonly OwnerCache $cache;
    /** @var array{lookups: int, cacheHits: int, failovers: int} */
    private array $stats = ['lookups' => 0, 'cacheHits' => 0, 'failovers' => 0];

    /**
     * @param \Redis $redis a phpredis connection without key prefix or serializer; never closed by the kit
     * @param array<string, mixed> $options see {@see Options}
     * @param OwnerCache|null $cache default: the one cache of this process for the namespace and Redis
     */
    public function __construct(\Redis $redis, array $options = [], ?OwnerCache $cache = null)
    {
        $this->options = new Options($options);
        $this->keys = new Keys($this->options->namespace);
        $this->registry = new Registry($redis, $this->keys);
        $scope = $redis->getHost() . ':' . $redis->getPort() . '/' . $redis->getDbNum() . '#' . $this->keys->namespace;
        $this->cache = $cache ?? OwnerCache::forProcess($scope, $this->options->cacheTtlMs, $this->options->maxCacheEntries);
    }

    /**
     * The owner of `$sessionId`, from the process cache when fresh, else one registry round trip. Null when the
     * registry has never seen the session. `$fresh`: skip the cache.
     */
    public function lookup(string $sessionId, bool $fresh = false): ?OwnerInfo
    {
        Ids::session($sessionId);
        $this->stats['lookups']++;
        $cached = $fresh ? null : $this->cache->get($sessionId);
        if ($cached !== null) {
            $this->stats['cacheHits']++;
            return $cached;
        }
        return $this->read($sessionId);
    }

    /** @return list<InstanceInfo> every registered instance with its load and capacity. */
    public function instances(): array
    {
        return $this->registry->instances();
    }

    /**
     * Sends `$method $path` to the session's owner and returns its response, whatever its status.
     *
     * Sends the epoch it expects in `x-wafleet-epoch`. On a connection failure or timeout, 421, a 404 after which
     * the registry names another owner, or a 503 with `Retry-After` (the session is starting, the owner draining),
     * it waits up to `failoverTimeoutMs` for a live WORKING owner and retries once: idempotent methods, or any
     * method with an `Idempotency-Key` (given in `headers`, or generated with `'idempotent' => true`). A send
     * returns or throws within `requestTimeoutMs + failoverTimeoutMs` (plus registry round trips).
     *
     * @param array{headers?: array<string, string>, json?: mixed, body?: string, query?: array<string, mixed>, idempotent?: bool} $options
     * @throws FailoverTimeoutException|ConnectionException|ConfigException|\Wafleet\Exception\InvalidIdException|\Wafleet\Exception\RegistryUnavailableException
     */
    public function send(string $sessionId, string $method, string $path, array $options = []): ResponseInterface
    {
        Ids::session($sessionId);
        OwnerUrl::checkPath($path);
        $method = strtoupper($method);
        $request = $this->requestOptions($options);
        $retryable = in_array($method, self::IDEMPOTENT, true) || self::hasHeader($request['headers'], Protocol::IDEMPOTENCY_HEADER);

        $owner = $this->lookup($sessionId);
        if ($owner === null || !$owner->routable()) {
            $owner = $this->awaitOwner($sessionId, null, $this->deadline());
        }
        [$response, $error] = $this->attempt($owner, $method, $path, $request, $this->options->requestTimeoutMs);
        $failure = $this->failure($sessionId, $owner, $response, $error);
        if ($failure === null) {
            return $response;
        }
        // The entry that sent us here is stale (or its owner is unreachable): the next lookup reads the registry.
        $this->cache->forget($sessionId);
        if (!$retryable) {
            return $response ?? throw new ConnectionException('Request to the session\'s owner failed (' . self::cause($error) . ') and may not be retried without an Idempotency-Key', $error);
        }
        $this->stats['failovers']++;
        $deadline = $this->deadline();
        if ($failure === 'retry-after') {
            usleep((int) min(self::retryAfterMs($response) * 1000, max(0, $deadline - self::nowMs()) * 1000));
        }
        $next = $this->awaitOwner($sessionId, $failure === 'retry-after' ? null : $owner, $deadline);
        $remaining = (int) max(1, $deadline - self::nowMs());
        [$response, $error] = $this->attempt($next, $method, $path, $request, min($this->options->requestTimeoutMs, $remaining));
        if ($error !== null) {
            $this->cache->forget($sessionId);
            throw new ConnectionException('Retry at the new owner failed (' . self::cause($error) . ')', $error);
        }
        return $response;
    }

    /**
     * Places a session (desired state running) on the least-loaded live instance with capacity and matching labels,
     * through any live instance's `POST /sessions/:id/place`. Null labels or metadata keep the recorded ones.
     *
     * @param array<string, string>|null $labels
     * @param array<string, mixed>|null $metadata
     * @return array<string, mixed> `{sessionId, outcome: assigned|existing|pending, owner?, ownerUrl?, epoch?}`
     */
    public function place(string $sessionId, ?array $labels = null, ?array $metadata = null): array
    {
        $body = [];
        if ($labels !== null) {
            $body['labels'] = (object) $labels;
        }
        if ($metadata !== null) {
            $body['metadata'] = (object) $metadata;
        }
        return $this->admin($sessionId, 'place', (object) $body);
    }

    /** Stops a session (desired state stopped, reason `stopped by request`) through the instance routes. @return array<string, mixed> */
    public function stop(string $sessionId): array
    {
        return $this->admin($sessionId, 'stop', null);
    }

    /** Restarts a session: a fresh engine on its owner, or placed again when nobody live owns it. @return array<string, mixed> */
    public function restart(string $sessionId): array
    {
        return $this->admin($sessionId, 'restart', null);
    }

    /** @return array{lookups: int, cacheHits: int, registryReads: int, failovers: int, cacheEntries: int} */
    public function stats(): array
    {
        return $this->stats + ['registryReads' => $this->registry->reads(), 'cacheEntries' => $this->cache->stats()['entries']];
    }

    private function read(string $sessionId): ?OwnerInfo
    {
        $owner = $this->registry->owner($sessionId);
        if ($owner === null) {
            $this->cache->forget($sessionId);
        } else {
            $this->cache->put($owner);
        }
        return $owner;
    }

    /**
     * Why the outcome calls for a failover, or null when it is the answer.
     * @return 'connection'|'misdirected'|'moved'|'retry-after'|null
     */
    private function failure(string $sessionId, OwnerInfo $owner, ?ResponseInterface $response, ?\Throwable $error): ?string
    {
        if ($response === null) {
            return 'connection';
        }
        $status = $response->getStatusCode();
        if ($status === 421 || ($status === 409 && self::errorCode($response) === 'WAFLEET_STALE_EPOCH')) {
            return 'misdirected';
        }
        if ($status === 404) {
            $now = $this->read($sessionId);
            return $now !== null && !$now->sameAssignment($owner) ? 'moved' : null;
        }
        if ($status === 503 && $response->hasHeader('Retry-After')) {
            return 'retry-after';
        }
        return null;
    }

    /** Waits for a live WORKING owner other than `$previous` (same instance and epoch), polling the registry. */
    private function awaitOwner(string $sessionId, ?OwnerInfo $previous, float $deadline): OwnerInfo
    {
        for (;;) {
            $current = $this->read($sessionId);
            $moved = $previous === null || $current === null || !$current->sameAssignment($previous);
            if ($current !== null && $current->routable() && $current->status === 'WORKING' && $moved) {
                return $current;
            }
            $remaining = $deadline - self::nowMs();
            if ($remaining <= 0) {
                throw new FailoverTimeoutException($sessionId, $this->options->failoverTimeoutMs);
            }
            usleep((int) (min($remaining, $this->options->pollIntervalMs) * 1000));
        }
    }

    /**
     * @param array<string, mixed> $request
     * @return array{0: ?ResponseInterface, 1: ?\Throwable}
     */
    private function attempt(OwnerInfo $owner, string $method, string $path, array $request, int $timeoutMs): array
    {
        $url = OwnerUrl::under($owner->ownerUrl, $path);
        $request['headers'][Protocol::EPOCH_HEADER] = $owner->epoch;
        $request['timeout'] = $timeoutMs / 1000;
        try {
            return [HttpPool::for($url, $this->options->connectTimeoutMs)->request($method, $url, $request), null];
        } catch (TransferException $e) {
            // http_errors is off: every TransferException is a request that got no (complete) response.
            return [null, $e];
        }
    }

    /**
     * @param array<string, mixed> $options
     * @return array<string, mixed> Guzzle request options
     */
    private function requestOptions(array $options): array
    {
        $unknown = array_diff(array_keys($options), self::SEND_OPTIONS);
        if ($unknown !== []) {
            $name = (string) reset($unknown);
            throw new ConfigException($name, "Unknown send option `$name`; known: " . implode(', ', self::SEND_OPTIONS));
        }
        $headers = $options['headers'] ?? [];
        if (($options['idempotent'] ?? false) === true && !self::hasHeader($headers, Protocol::IDEMPOTENCY_HEADER)) {
            $headers['Idempotency-Key'] = self::uuid();
        }
        $request = ['headers' => $headers];
        if (array_key_exists('json', $options)) {
            $request['body'] = json_encode($options['json'], JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
            if (!self::hasHeader($headers, 'content-type')) {
                $request['headers']['Content-Type'] = 'application/json';
            }
        } elseif (isset($options['body'])) {
            if (!is_string($options['body'])) {
                throw new ConfigException('body', 'Expected `body` to be a string (it is sent again on a retry)');
            }
            $request['body'] = $options['body'];
        }
        if (isset($options['query'])) {
            $request['query'] = $options['query'];
        }
        return $request;
    }

    /**
     * One admin call: to a live instance, then to the owner it names (421), waiting out an expiring owner (503).
     * @return array<string, mixed>
     */
    private function admin(string $sessionId, string $action, ?object $body): array
    {
        Ids::session($sessionId);
        $token = $this->options->adminToken ?? throw new ConfigException('adminToken', "Set `adminToken` (the instances' WAFLEET_ADMIN_TOKEN) to $action sessions");
        $path = "/sessions/$sessionId/$action";
        $request = [
            'headers' => ['Authorization' => "Bearer $token", 'Accept' => 'application/json'],
            // place waits out a registry quarantine on the instance (a new or restored Redis): more than one request.
            'timeout' => ($this->options->requestTimeoutMs + $this->options->failoverTimeoutMs) / 1000,
        ];
        if ($body !== null) {
            $request['json'] = $body;
        }
        $deadline = $this->deadline();
        $targets = $this->servingUrls();
        $failed = null;
        while (true) {
            $url = array_shift($targets) ?? throw ($failed === null
                ? new ConnectionException('No live instance serves the admin routes (is the fleet running in this namespace?)')
                : new ConnectionException("No live instance answered $action (" . self::cause($failed) . ')', $failed));
            try {
                $response = HttpPool::for($url, $this->options->connectTimeoutMs)->request('POST', OwnerUrl::under($url, $path), $request);
            } catch (TransferException $e) {
                $failed = $e;
                continue; // another live instance serves the same route
            }
            $status = $response->getStatusCode();
            $answer = json_decode((string) $response->getBody(), true) ?? [];
            if ($status === 421 && is_string($answer['ownerUrl'] ?? null) && $answer['ownerUrl'] !== '' && self::nowMs() < $deadline) {
                array_unshift($targets, $answer['ownerUrl']);
            } elseif (($status === 503 || $status === 421) && self::nowMs() < $deadline) {
                usleep((int) min(self::retryAfterMs($response) * 1000, max(0, $deadline - self::nowMs()) * 1000));
                $targets = $targets === [] ? $this->servingUrls() : $targets;
            } elseif ($status >= 200 && $status < 300) {
                $this->cache->forget($sessionId);
                return $answer;
            } else {
                throw new InstanceException(
                    is_string($answer['error'] ?? null) ? $answer['error'] : 'WAFLEET_INSTANCE_ERROR',
                    $status,
                    "The instance answered $status to $action" . (is_string($answer['message'] ?? null) ? ": {$answer['message']}" : ''),
                );
            }
        }
    }

    /** @return list<string> URLs of the instances that serve admin routes, in random order. */
    private function servingUrls(): array
    {
        $urls = array_map(static fn (InstanceInfo $i) => $i->url, array_filter($this->instances(), static fn (InstanceInfo $i) => $i->serving()));
        shuffle($urls);
        return $urls;
    }

    private function deadline(): float
    {
        return self::nowMs() + $this->options->failoverTimeoutMs;
    }

    private static function retryAfterMs(?ResponseInterface $response): int
    {
        $answer = json_decode((string) $response?->getBody(), true);
        if (is_array($answer) && is_int($answer['retryAfterMs'] ?? null)) {
            return max(0, $answer['retryAfterMs']);
        }
        $header = $response?->getHeaderLine('Retry-After') ?? '';
        return ctype_digit($header) ? (int) $header * 1000 : 1000;
    }

    /** The transport's own words (e.g. "Connection refused"), without the URL: its path holds the session id. */
    private static function cause(?\Throwable $error): string
    {
        $context = $error instanceof \GuzzleHttp\Exception\RequestException || $error instanceof \GuzzleHttp\Exception\ConnectException ? $error->getHandlerContext() : [];
        return is_string($context['error'] ?? null) && $context['error'] !== '' ? $context['error'] : 'no response';
    }

    private static function errorCode(ResponseInterface $response): ?string
    {
        $answer = json_decode((string) $response->getBody(), true);
        return is_array($answer) && is_string($answer['error'] ?? null) ? $answer['error'] : null;
    }

    /** @param array<string, mixed> $headers */
    private static function hasHeader(array $headers, string $name): bool
    {
        foreach (array_keys($headers) as $key) {
            if (strtolower((string) $key) === $name) {
                return true;
            }
        }
        return false;
    }

    private static function uuid(): string
    {
        $b = random_bytes(16);
        $b[6] = chr(ord($b[6]) & 0x0f | 0x40);
        $b[8] = chr(ord($b[8]) & 0x3f | 0x80);
        return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($b), 4));
    }

    private static function nowMs(): float
    {
        return hrtime(true) / 1e6;
    }
}
