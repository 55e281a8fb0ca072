<?php

declare(strict_types=1);

namespace Wafleet\Laravel\Facades;

use Illuminate\Support\Facades\Facade;

/**
 * @method static \Psr\Http\Message\ResponseInterface send(string $sessionId, string $method, string $path, array $options = [])
 * @method static \Wafleet\Registry\OwnerInfo|null lookup(string $sessionId, bool $fresh = false)
 * @method static array place(string $sessionId, ?array $labels = null, ?array $metadata = null)
 * @method static array stop(string $sessionId)
 * @method static array restart(string $sessionId)
 * @method static list<\Wafleet\Registry\InstanceInfo> instances()
 * @see \Wafleet\Fleet
 */
final class Wafleet extends Facade
{
    protected static function getFacadeAccessor(): string
    {
        return \Wafleet\Fleet::class;
    }
}
