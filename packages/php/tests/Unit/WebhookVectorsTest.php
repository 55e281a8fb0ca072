<?php

declare(strict_types=1);

namespace Wafleet\Tests\Unit;

use PHPUnit\Framework\TestCase;
use Wafleet\Exception\ConfigException;
use Wafleet\Exception\WebhookException;
use Wafleet\Webhook\EventOrder;
use Wafleet\Webhook\LegacyWebhookVerifier;
use Wafleet\Webhook\StandardWebhookVerifier;

/** test/vectors/webhooks.json, which test/webhook-vectors.test.ts runs through the Node verifier too. */
final class WebhookVectorsTest extends TestCase
{
    /** @return array<string, mixed> */
    private static function vectors(): array
    {
        return json_decode((string) file_get_contents(dirname(__DIR__, 4) . '/test/vectors/webhooks.json'), true, 64, JSON_THROW_ON_ERROR);
    }

    /** @return iterable<string, array{array<string, mixed>}> */
    public static function standard(): iterable
    {
        foreach (self::vectors()['standard'] as $case) {
            yield $case['name'] => [$case];
        }
    }

    /** @return iterable<string, array{array<string, mixed>}> */
    public static function legacy(): iterable
    {
        foreach (self::vectors()['legacy'] as $case) {
            yield $case['name'] => [$case];
        }
    }

    /** @return iterable<string, array{array<string, mixed>}> */
    public static function order(): iterable
    {
        foreach (self::vectors()['order'] as $case) {
            yield $case['name'] => [$case];
        }
    }

    /** @param array<string, mixed> $case */
    private static function outcome(callable $verify): array
    {
        try {
            $verify();
            return ['ok' => true];
        } catch (WebhookException $e) {
            return ['ok' => false, 'reason' => $e->reason];
        }
    }

    /**
     * @dataProvider standard
     * @param array<string, mixed> $case
     */
    public function testStandardWebhooksVerificationGivesTheVectorsOutcome(array $case): void
    {
        $verifier = new StandardWebhookVerifier($case['secrets'], 300, static fn () => $case['now']);
        self::assertSame($case['expect'], self::outcome(static fn () => $verifier->verify($case['headers'], $case['body'])));
    }

    /**
     * @dataProvider legacy
     * @param array<string, mixed> $case
     */
    public function testLegacyHmacVerificationGivesTheVectorsOutcome(array $case): void
    {
        $verifier = new LegacyWebhookVerifier($case['secrets'], 300, static fn () => $case['now']);
        self::assertSame($case['expect'], self::outcome(static fn () => $verifier->verify($case['headers'], $case['body'])));
    }

    /**
     * @dataProvider order
     * @param array<string, mixed> $case
     */
    public function testEventOrderGivesTheVectorsOutcome(array $case): void
    {
        self::assertSame($case['expect'], EventOrder::compare($case['a'], $case['b']) <=> 0);
        self::assertSame(-$case['expect'], EventOrder::compare($case['b'], $case['a']) <=> 0);
    }

    public function testAVerifiedStandardWebhookReturnsItsEnvelope(): void
    {
        $case = self::vectors()['standard'][0];
        $event = (new StandardWebhookVerifier($case['secrets'], 300, static fn () => $case['now']))->verify($case['headers'], $case['body']);
        self::assertSame(['1802240000000017', 42, 'WORKING'], [$event['epoch'], $event['seq'], $event['data']['status']]);
    }

    public function testASecretOfFewerThan24BytesIsRefused(): void
    {
        $this->expectException(ConfigException::class);
        new StandardWebhookVerifier('whsec_' . base64_encode(random_bytes(16)));
    }

    public function testAnEpochThatIsNotADecimalStringIsRefused(): void
    {
        $this->expectException(ConfigException::class);
        EventOrder::compare(['epoch' => 1.8e15, 'seq' => 1], ['epoch' => '1', 'seq' => 1]);
    }
}
