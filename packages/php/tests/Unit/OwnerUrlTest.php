<?php

declare(strict_types=1);

namespace Wafleet\Tests\Unit;

use PHPUnit\Framework\TestCase;
use Wafleet\Exception\ConfigException;
use Wafleet\Http\OwnerUrl;

final class OwnerUrlTest extends TestCase
{
    public function testAPathIsAppendedToTheBaseUrlAndItsBasePath(): void
    {
        self::assertSame('http://wa-1:3000/sessions/s1/messages?x=1', OwnerUrl::under('http://wa-1:3000', '/sessions/s1/messages?x=1'));
        self::assertSame('https://gw.example/wa-1/sessions/s1', OwnerUrl::under('https://gw.example/wa-1', '/sessions/s1'));
    }

    public function testAPathThatLooksLikeAUrlStaysOnTheOwnersOrigin(): void
    {
        $url = OwnerUrl::under('http://wa-1:3000', '/http://evil.example/');
        self::assertSame('wa-1', parse_url($url, PHP_URL_HOST));
        self::assertSame(3000, parse_url($url, PHP_URL_PORT));
        self::assertSame('/http://evil.example/', parse_url($url, PHP_URL_PATH));
    }

    /** @return iterable<string, array{string}> */
    public static function escapingPaths(): iterable
    {
        yield 'protocol-relative' => ['//evil.example/x'];
        yield 'backslash' => ['/\\evil.example/x'];
        yield 'dot-dot' => ['/../admin'];
        yield 'encoded dot-dot' => ['/sessions/%2E%2e/admin'];
        yield 'single dot' => ['/./x'];
        yield 'relative' => ['sessions/s1'];
        yield 'white space' => ["/a\tb"];
        yield 'fragment' => ['/a#b'];
        yield 'empty' => [''];
    }

    /** @dataProvider escapingPaths */
    public function testAPathThatCouldLeaveTheOriginOrBasePathIsRefusedBeforeAnythingIsSent(string $path): void
    {
        $this->expectException(ConfigException::class);
        OwnerUrl::under('http://gw.example/wa-1', $path);
    }
}
