<?php

declare(strict_types=1);

namespace Wafleet\Laravel\Middleware;

use Closure;
use Illuminate\Contracts\Config\Repository;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Wafleet\Exception\ConfigException;
use Wafleet\Exception\WebhookException;
use Wafleet\Webhook\LegacyWebhookVerifier;
use Wafleet\Webhook\StandardWebhookVerifier;

/**
 * Lets a wafleet webhook through only when authentic (config `wafleet.webhooks`: scheme `standard` or `legacy`).
 * Answers 401 `{error: 'WAFLEET_WEBHOOK_INVALID', reason}` for headers, timestamp or signature, 400 for a body
 * that is not an envelope; a 4xx makes the outbox dead-letter the event, to be replayed once fixed. The verified
 * event is in `$request->attributes->get('wafleet_event')`.
 */
final class VerifyWafleetWebhook
{
    public function __construct(private readonly Repository $config)
    {
    }

    public function handle(Request $request, Closure $next): mixed
    {
        $c = $this->config->get('wafleet.webhooks', []);
        $tolerance = (int) ($c['tolerance_seconds'] ?? 300);
        $verifier = match ($c['scheme'] ?? 'standard') {
            'standard' => new StandardWebhookVerifier($c['secrets'] ?? [], $tolerance),
            'legacy' => new LegacyWebhookVerifier($c['legacy_secrets'] ?? [], $tolerance),
            default => throw new ConfigException('wafleet.webhooks.scheme', "Expected `wafleet.webhooks.scheme` to be 'standard' or 'legacy'"),
        };
        try {
            $event = $verifier->verify($request->headers->all(), $request->getContent());
        } catch (WebhookException $e) {
            return new JsonResponse(['error' => $e->errorCode, 'reason' => $e->reason], $e->reason === 'body' ? 400 : 401);
        }
        $request->attributes->set('wafleet_event', $event);
        return $next($request);
    }
}
