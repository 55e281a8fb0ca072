<?php

declare(strict_types=1);

namespace Wafleet\Webhook;

use Wafleet\Exception\ConfigException;
use Wafleet\Exception\WebhookException;
use Wafleet\Generated\Protocol;

/**
 * Verifies a wafleet webhook per Standard Webhooks, as `verifyWebhook` of @wafleet/client does: the `webhook-*`
 * headers, a timestamp within the tolerance (either way), one `v1,<base64>` signature of `id.timestamp.body` under
 * one of the `whsec_` secrets (several during a rotation, compared in constant time), and an envelope whose `id`
 * is `webhook-id`. It does not deduplicate: store `id`, and apply state only when newer ({@see EventOrder}).
 *
 * @example
 * $event = (new StandardWebhookVerifier([$newSecret, $oldSecret]))->verify($request->headers->all(), $request->getContent());
 */
final class StandardWebhookVerifier
{
    private const BASE64 = '#^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$#D';
    private const STATE_EVENT_TYPES = ['session.status', 'session.ready'];

    /** @var list<string> */
    private readonly array $keys;
    /** @var \Closure(): int */
    private readonly \Closure $now;

    /**
     * @param string|list<string> $secrets `whsec_` + base64 of 24 to 64 bytes
     * @param int $toleranceSeconds largest difference between `webhook-timestamp` and now @default 300
     * @param (\Closure(): int)|null $now current unix seconds @default time()
     */
    public function __construct(string|array $secrets, private readonly int $toleranceSeconds = 300, ?\Closure $now = null)
    {
        $list = is_string($secrets) ? [$secrets] : $secrets;
        if ($list === []) {
            throw new ConfigException('secrets', 'Expected `secrets` to be a whsec_ secret or a non-empty list of them');
        }
        $this->keys = array_map(self::key(...), array_values($list));
        if ($toleranceSeconds < 1) {
            throw new ConfigException('toleranceSeconds', "Expected `toleranceSeconds` to be a positive integer, got $toleranceSeconds");
        }
        $this->now = $now ?? static fn (): int => time();
    }

    /**
     * @param array<string, string|list<string>|null> $headers
     * @return array<string, mixed> the envelope
     * @throws WebhookException
     */
    public function verify(array $headers, string $rawBody): array
    {
        $id = Headers::single($headers, 'webhook-id');
        $timestamp = Headers::single($headers, 'webhook-timestamp');
        $signatures = preg_split('/\s+/', implode(' ', Headers::values($headers, 'webhook-signature')), -1, PREG_SPLIT_NO_EMPTY) ?: [];
        if ($signatures === []) {
            throw new WebhookException('headers', 'Missing the webhook-signature header');
        }
        Headers::checkTimestamp($timestamp, ($this->now)(), $this->toleranceSeconds, 'webhook-timestamp');

        // The base64 text is compared, not decoded bytes, so that no lenient decoding widens what is accepted.
        $content = "$id.$timestamp.$rawBody";
        $matched = false;
        foreach ($this->keys as $key) {
            $expected = base64_encode(hash_hmac('sha256', $content, $key, true));
            foreach ($signatures as $entry) {
                // Other schemes (v1a, future versions) are not ours. No early exit: every comparison runs.
                $matched = (str_starts_with($entry, 'v1,') && hash_equals($expected, substr($entry, 3))) || $matched;
            }
        }
        if (!$matched) {
            throw new WebhookException('signature', 'No v1 signature in webhook-signature matches any of the secrets');
        }
        return self::envelope($rawBody, $id);
    }

    /** @return array<string, mixed> */
    private static function envelope(string $rawBody, string $id): array
    {
        if (!mb_check_encoding($rawBody, 'UTF-8')) {
            throw new WebhookException('body', 'Body is not valid UTF-8');
        }
        try {
            // Decoded as objects first: an empty JSON object and an empty array differ only there.
            $o = json_decode($rawBody, false, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException $err) {
            throw new WebhookException('body', "Body is not valid JSON: {$err->getMessage()}");
        }
        if (!$o instanceof \stdClass) {
            throw new WebhookException('body', 'Expected the envelope to be a JSON object');
        }
        $e = json_decode($rawBody, true, 512, JSON_THROW_ON_ERROR);
        $checks = [
            'id' => is_string($e['id'] ?? null) && $e['id'] !== '',
            'type' => is_string($e['type'] ?? null) && preg_match(Protocol::EVENT_TYPE_PATTERN, $e['type']) === 1,
            'timestamp' => is_string($e['timestamp'] ?? null) && strtotime($e['timestamp']) !== false,
            'session' => is_string($e['session'] ?? null) && ($e['session'] === '' || (strlen($e['session']) <= Protocol::MAX_SESSION_ID_LENGTH && preg_match(Protocol::SESSION_ID_PATTERN, $e['session']) === 1)),
            'epoch' => is_string($e['epoch'] ?? null) && preg_match(Protocol::CANONICAL_EPOCH_PATTERN, $e['epoch']) === 1,
            'seq' => is_int($e['seq'] ?? null) && $e['seq'] >= 0,
            'instance' => ($o->instance ?? null) instanceof \stdClass && is_string($e['instance']['id'] ?? null) && is_string($e['instance']['url'] ?? null),
            'data' => ($o->data ?? null) instanceof \stdClass,
        ];
        if (in_array($e['type'] ?? null, self::STATE_EVENT_TYPES, true) && is_array($e['data'] ?? null)) {
            $checks['data'] = $checks['data'] && is_string($e['data']['status'] ?? null) && is_string($e['data']['previous'] ?? null);
        }
        foreach ($checks as $field => $ok) {
            if (!$ok) {
                throw new WebhookException('body', "Unexpected envelope `$field`");
            }
        }
        if ($e['id'] !== $id) {
            throw new WebhookException('body', 'Envelope id differs from the webhook-id header');
        }
        return $e;
    }

    private static function key(mixed $secret): string
    {
        if (!is_string($secret) || !str_starts_with($secret, 'whsec_')) {
            throw new ConfigException('secrets', 'Expected each secret to be a string starting with whsec_ (Standard Webhooks format)');
        }
        $encoded = substr($secret, 6);
        if ($encoded === '' || preg_match(self::BASE64, $encoded) !== 1) {
            throw new ConfigException('secrets', 'Expected each secret to be whsec_ followed by standard base64 with padding');
        }
        $key = (string) base64_decode($encoded, true);
        if (strlen($key) < 24 || strlen($key) > 64) {
            throw new ConfigException('secrets', 'Expected each secret to decode to 24 to 64 bytes (base64 of random bytes), got ' . strlen($key));
        }
        return $key;
    }
}
