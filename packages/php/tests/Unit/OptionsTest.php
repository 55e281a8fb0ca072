<?php

declare(strict_types=1);

namespace Wafleet\Tests\Unit;

use PHPUnit\Framework\TestCase;
use Wafleet\Exception\ConfigException;
use Wafleet\Exception\InvalidIdException;
use Wafleet\Options;

final class OptionsTest extends TestCase
{
    public function testTheRequestTimeoutDefaultsToTheLeaseTtl(): void
    {
        $options = new Options(['leaseTtlMs' => 45000]);
        self::assertSame(45000, $options->requestTimeoutMs);
        self::assertSame(15000, $options->failoverTimeoutMs);
        self::assertSame(60000, $options->cacheTtlMs);
        self::assertSame('default', $options->namespace);
    }

    public function testANonPositiveTimeoutIsRefusedNamingTheOption(): void
    {
        try {
            new Options(['failoverTimeoutMs' => -1]);
            self::fail('accepted');
        } catch (ConfigException $e) {
            self::assertSame('failoverTimeoutMs', $e->option);
            self::assertSame('WAFLEET_CONFIG', $e->errorCode);
            self::assertStringContainsString('-1', $e->getMessage());
        }
    }

    public function testAnUnknownOptionIsRefused(): void
    {
        $this->expectException(ConfigException::class);
        new Options(['failoverTimeout' => 1000]);
    }

    public function testAShortAdminTokenIsRefusedWithoutQuotingIt(): void
    {
        try {
            new Options(['adminToken' => 'secret-but-short']);
            self::fail('accepted');
        } catch (ConfigException $e) {
            self::assertSame('adminToken', $e->option);
            self::assertStringNotContainsString('secret-but-short', $e->getMessage());
        }
    }

    public function testANamespaceWithBracesIsRefused(): void
    {
        $this->expectException(InvalidIdException::class);
        new Options(['namespace' => 'a}b']);
    }
}
