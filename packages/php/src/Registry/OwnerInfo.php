<?php

declare(strict_types=1);

namespace Wafleet\Registry;

/** Where a session lives: the fields of the Node `Fleet.owner()` answer. */
final class OwnerInfo
{
    /**
     * @param string $owner     owning instance id, '' when nobody owns the session
     * @param string $ownerUrl  the owner's base URL ('' when no owner; the last known URL of a dead owner)
     * @param string $epoch     fencing epoch, a decimal string (exceeds PHP_INT_MAX one day: never cast it)
     * @param string $status    STOPPED | STARTING | SCAN_QR_CODE | WORKING | FAILED
     * @param string $desired   running | stopped
     * @param bool   $live      the owner holds a valid lease of the incarnation that was assigned the session
     * @param string $reason    why a stopped session waits for a human, '' while it should run
     * @param array<string, mixed> $metadata the host's per-session data ([] when none)
     */
    public function __construct(
        public readonly string $sessionId,
        public readonly string $owner,
        public readonly string $ownerUrl,
        public readonly string $epoch,
        public readonly string $status,
        public readonly string $desired,
        public readonly bool $live,
        public readonly string $reason,
        public readonly array $metadata,
    ) {
    }

    /** True when a request can go to the owner now. */
    public function routable(): bool
    {
        return $this->live && $this->ownerUrl !== '';
    }

    /** Same owner and epoch: the same assignment. */
    public function sameAssignment(OwnerInfo $other): bool
    {
        return $this->owner === $other->owner && $this->epoch === $other->epoch;
    }

    /** @return array<string, mixed> */
    public function toArray(): array
    {
        return get_object_vars($this);
    }
}
