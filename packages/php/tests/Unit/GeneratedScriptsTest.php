<?php

declare(strict_types=1);

namespace Wafleet\Tests\Unit;

use PHPUnit\Framework\TestCase;
use Wafleet\Generated\Scripts;

final class GeneratedScriptsTest extends TestCase
{
    /** @return iterable<string, array{array{name: string, numberOfKeys: int, sha: string, lua: string}}> */
    public static function scripts(): iterable
    {
        yield 'lookup' => [Scripts::LOOKUP];
        yield 'instances' => [Scripts::INSTANCES];
    }

    /** @dataProvider scripts */
    public function testTheGeneratedScriptIsTheOneCoreCompiledWithTheSameSha(array $script): void
    {
        $ts = (string) file_get_contents(dirname(__DIR__, 3) . '/protocol/src/scripts.generated.ts');
        $pattern = '/name: "' . preg_quote($script['name'], '/') . '", numberOfKeys: (\d+), sha: "([0-9a-f]{40})"/';
        self::assertSame(1, preg_match($pattern, $ts, $m), "core has no {$script['name']} script");
        self::assertSame([(int) $m[1], $m[2]], [$script['numberOfKeys'], $script['sha']]);
        self::assertSame($script['sha'], sha1($script['lua']), 'the Lua text is the one its SHA names');
    }
}
