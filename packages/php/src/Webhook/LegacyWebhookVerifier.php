<?php

declare(strict_types=1);

namespace Wafleet\Webhook;

use Wafleet\Exception\ConfigException;
use Wafleet\Exception\WebhookException;

/**
 * Verifies the legacy scheme of `legacyHmacSigner`: `X-HMAC-Signature` is the lowercase hex HMAC-SHA256 of
 * `X-Timestamp` immediately followed by the raw body, keyed with the secret string as is. Several secrets only
 * while switching from an old one to a new one. Returns the decoded JSON body (whatever its format).
 */
final class LegacyWebhookVerifier
{
    /** @var list<string> */
    private readonly array $secrets;
    /** @var \Closure(): int */
    private readonly \Closure $now;

    /**
     * @param string|list<string> $secrets at least 8 characters, not only white space
     * @param int $toleranceSeconds largest difference between `X-Timestamp` and now @default 300
     * @param (\Closure(): int)|null $now current unix seconds @default time()
     */
    public function __construct(string|array $secrets, private readonly int $toleranceSeconds = 300, ?\Closure $now = null)
    {
        $list = array_values(is_string($secrets) ? [$secrets] : $secrets);
        foreach ($list as $secret) {
            if (!is_string($secret) || strlen($secret) < 8 || trim($secret) === '') {
                throw new ConfigException('secrets', 'Expected each legacy secret to be a string of at least 8 characters, not only white space');
            }
        }
        if ($list === []) {
            throw new ConfigException('secrets', 'Expected at least one legacy secret');
        }
        $this->secrets = $list;
        $this->now = $now ?? static fn (): int => time();
    }

    /**
     * @param array<string, string|list<string>|null> $headers
     * @return array<string, mixed> the decoded body
     * @throws WebhookException
     */
    public function verify(array $headers, string $rawBody): array
    {
        $timestamp = Headers::single($headers, 'x-timestamp');
        $signature = strtolower(Headers::single($headers, 'x-hmac-signature'));
        Headers::checkTimestamp($timestamp, ($this->now)(), $this->toleranceSeconds, 'X-Timestamp');
        $matched = false;
        foreach ($this->secrets as $secret) {
            $matched = hash_equals(hash_hmac('sha256', $timestamp . $rawBody, $secret), $signature) || $matched;
        }
        if (!$matched) {
            throw new WebhookException('signature', 'X-HMAC-Signature matches none of the secrets');
        }
        $body = json_decode($rawBody, true);
        if (!is_array($body) || ($body !== [] && array_is_list($body))) {
            throw new WebhookException('body', 'Expected the body to be a JSON object');
        }
        return $body;
    }
}
