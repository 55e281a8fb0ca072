<?php
// Measures, in one PHP process, side by side in interleaved rounds: the kit's owner lookup from its process cache
// and from the registry (one EVALSHA), a MariaDB query per message (today's pattern), and a request sent through
// `Fleet::send` next to the same request sent directly with a pooled Guzzle client, to the owner and to a non-owner
// that forwards it. Driven by bench/php.mjs, which
// starts Redis, the instances and the table, and passes them in the environment. Prints one JSON object.

declare(strict_types=1);

require __DIR__ . '/../../packages/php/autoload.php';

use Wafleet\Fleet;

$env = static fn (string $name): string => getenv($name) !== false ? (string) getenv($name) : throw new RuntimeException("$name is required");
$ids = json_decode(file_get_contents($env('BENCH_IDS_FILE')), true, 512, JSON_THROW_ON_ERROR);
$expected = json_decode(file_get_contents($env('BENCH_EXPECTED_FILE')), true, 512, JSON_THROW_ON_ERROR);
$elsewhere = json_decode(file_get_contents($env('BENCH_ELSEWHERE_FILE')), true, 512, JSON_THROW_ON_ERROR);
$lookups = (int) $env('BENCH_LOOKUPS');
$requests = (int) $env('BENCH_REQUESTS');
$rounds = 10;

$redis = new Redis();
$redis->connect('127.0.0.1', (int) $env('BENCH_REDIS_PORT'));
$fleet = new Fleet($redis, ['namespace' => $env('BENCH_NAMESPACE')]);
$check = static function (string $id, ?string $url) use ($expected): void {
    if ($url !== $expected[$id]) {
        throw new RuntimeException("lookup of $id answered " . var_export($url, true) . ", expected {$expected[$id]}");
    }
};

$methods = [
    'cache' => static function (string $id) use ($fleet, $check): void {
        $check($id, $fleet->lookup($id)?->ownerUrl);
    },
    'redis' => static function (string $id) use ($fleet, $check): void {
        $check($id, $fleet->lookup($id, true)?->ownerUrl);
    },
];
$mariadb = getenv('BENCH_MARIADB_TABLE');
if ($mariadb !== false && $mariadb !== '') {
    $pdo = new PDO('mysql:host=127.0.0.1;port=' . $env('BENCH_MARIADB_PORT') . ';dbname=test', 'root', '', [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
    $stmt = $pdo->prepare("SELECT assigned_instance_url FROM $mariadb WHERE session_id = ?");
    $methods['mariadb'] = static function (string $id) use ($stmt, $check): void {
        $stmt->execute([$id]);
        $check($id, $stmt->fetchColumn() ?: null);
        $stmt->closeCursor();
    };
}

$guzzle = new GuzzleHttp\Client(['http_errors' => false, 'allow_redirects' => false, 'timeout' => 5]);
$sends = [
    'direct' => static function (string $id) use ($guzzle, $expected): void {
        $res = $guzzle->get("{$expected[$id]}/sessions/$id/ping");
        if ($res->getStatusCode() !== 200) throw new RuntimeException('direct: ' . $res->getStatusCode());
        (string) $res->getBody();
    },
    'forwarded' => static function (string $id) use ($guzzle, $elsewhere): void {
        $res = $guzzle->get("{$elsewhere[$id]}/sessions/$id/ping");
        if ($res->getStatusCode() !== 200) throw new RuntimeException('forwarded: ' . $res->getStatusCode());
        (string) $res->getBody();
    },
    'send' => static function (string $id) use ($fleet): void {
        $res = $fleet->send($id, 'GET', "/sessions/$id/ping");
        if ($res->getStatusCode() !== 200) throw new RuntimeException('send: ' . $res->getStatusCode());
        (string) $res->getBody();
    },
];

/** @param array<string, callable(string): void> $fns @return array<string, array<string, float>> */
function measure(array $fns, array $ids, int $perMethod, int $rounds): array
{
    $names = array_keys($fns);
    $samples = array_fill_keys($names, []);
    foreach ($ids as $id) foreach ($fns as $fn) $fn($id); // warm: cache, connections, script cache
    $per = intdiv($perMethod, $rounds);
    $i = 0;
    for ($r = 0; $r < $rounds; $r++) {
        $k = $r % count($names);
        $order = array_merge(array_slice($names, $k), array_slice($names, 0, $k));
        if (intdiv($r, count($names)) % 2 === 1) $order = array_reverse($order);
        foreach ($order as $name) {
            $fn = $fns[$name];
            for ($j = 0; $j < $per; $j++) {
                $id = $ids[($i + $j * 7919) % count($ids)];
                $t = hrtime(true);
                $fn($id);
                $samples[$name][] = (hrtime(true) - $t) / 1e6;
            }
        }
        $i += $per;
    }
    $out = [];
    foreach ($samples as $name => $xs) {
        sort($xs);
        $n = count($xs);
        $sum = array_sum($xs);
        $out[$name] = ['n' => $n, 'p50' => $xs[(int) ceil(0.5 * $n) - 1], 'p99' => $xs[(int) ceil(0.99 * $n) - 1], 'mean' => $sum / $n, 'perSecond' => 1000 * $n / $sum];
    }
    return $out;
}

$lookupResults = measure($methods, $ids, $lookups, $rounds);
$sendResults = measure($sends, $ids, $requests, $rounds);
echo json_encode(['php' => PHP_VERSION, 'lookup' => $lookupResults, 'send' => $sendResults, 'stats' => $fleet->stats()], JSON_THROW_ON_ERROR), "\n";
