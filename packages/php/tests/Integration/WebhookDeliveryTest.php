<?php

declare(strict_types=1);

namespace Wafleet\Tests\Integration;

use GuzzleHttp\Client;
use PHPUnit\Framework\TestCase;
use Wafleet\Tests\Support\Processes;

/** A real @wafleet/core outbox delivers to a PHP receiver (`php -S`) that verifies with the kit. */
final class WebhookDeliveryTest extends TestCase
{
    public function testWebhooksDeliveredByTheNodeOutboxVerifyAndTamperedCopiesAreRejected(): void
    {
        $dir = Processes::tmpDir();
        $log = "$dir/received.jsonl";
        $secret = 'whsec_' . base64_encode(random_bytes(32));
        $legacySecret = 'legacy-' . bin2hex(random_bytes(8));
        $port = Processes::freePort();
        $receiver = Processes::spawn(
            [PHP_BINARY, '-S', "127.0.0.1:$port", dirname(__DIR__) . '/fixtures/receiver.php'],
            "$dir/receiver.log",
            ['WAFLEET_TEST_SECRET' => $secret, 'WAFLEET_TEST_LEGACY_SECRET' => $legacySecret, 'WAFLEET_TEST_LOG' => $log],
        );
        try {
            Processes::waitFor(static fn () => @fsockopen('127.0.0.1', $port) !== false, 5000, 'php -S');
            $config = json_encode(['root' => dirname(__DIR__, 4), 'dir' => $dir, 'url' => "http://127.0.0.1:$port", 'secret' => $secret, 'legacySecret' => $legacySecret]);
            exec('node ' . escapeshellarg(dirname(__DIR__) . '/fixtures/outbox-deliver.mjs') . ' ' . escapeshellarg((string) $config) . ' 2>&1', $output, $exit);
            self::assertSame(0, $exit, implode("\n", $output));

            $received = array_map(static fn ($l) => json_decode($l, true), array_values(array_filter(explode("\n", (string) file_get_contents($log)))));
            $byPath = array_column($received, null, 'path');
            self::assertSame(204, $byPath['/standard']['status'], json_encode($byPath['/standard']));
            self::assertSame(204, $byPath['/legacy']['status'], json_encode($byPath['/legacy']));
            self::assertMatchesRegularExpression('/^evt_/', (string) $byPath['/standard']['id']);

            $http = new Client(['http_errors' => false]);
            foreach (['/standard', '/legacy'] as $path) {
                $original = $byPath[$path];
                $tampered = str_replace('"WORKING"', '"STOPPED"', $original['body']);
                self::assertNotSame($original['body'], $tampered);
                $response = $http->post("http://127.0.0.1:$port$path", ['headers' => $original['headers'], 'body' => $tampered]);
                self::assertSame(401, $response->getStatusCode(), "tampered copy to $path");
            }
            $last = array_map(static fn ($l) => json_decode($l, true), array_slice(array_values(array_filter(explode("\n", (string) file_get_contents($log)))), -2));
            self::assertSame(['signature', 'signature'], array_column($last, 'reason'));
        } finally {
            Processes::kill($receiver);
        }
    }
}
