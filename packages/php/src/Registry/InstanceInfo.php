<?php

declare(strict_types=1);

namespace Wafleet\Registry;

/** A registered instance with its load: the fields of the Node `fleet.instances()` answer. */
final class InstanceInfo
{
    /** @param array<string, string> $labels */
    public function __construct(
        public readonly string $id,
        public readonly string $url,
        public readonly int $maxSessions,
        public readonly int $load,
        public readonly array $labels,
        public readonly bool $draining,
        public readonly string $mode,
        public readonly int $leaseDeadline,
        public readonly bool $live,
    ) {
    }

    /** Live, managed, not draining: placement may choose it, and it serves the admin routes. */
    public function serving(): bool
    {
        return $this->live && $this->mode === 'managed' && !$this->draining;
    }

    /** @return array<string, mixed> */
    public function toArray(): array
    {
        return get_object_vars($this);
    }
}
