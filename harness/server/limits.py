"""Rate limits of the submission server: a token bucket per key (a participant's token, a client address), in
this process's memory. A request over a limit is answered 429 with the seconds until it would pass."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """`per_minute` requests per key, in bursts of up to `burst` (default: `per_minute`)."""

    per_minute: float
    burst: float | None = None
    clock: object = time.monotonic
    _buckets: dict[str, Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> float:
        """Take one request for `key`: 0.0 when it passes, else the seconds to wait."""
        capacity = self.burst or self.per_minute
        rate = self.per_minute / 60.0
        now = self.clock()  # type: ignore[operator]
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = Bucket(capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            if len(self._buckets) > 100_000:  # bounded memory under a flood of addresses: forget full buckets
                self._forget_full(now, capacity, rate)
            return (1.0 - bucket.tokens) / rate

    def _forget_full(self, now: float, capacity: float, rate: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * rate >= capacity]:
            del self._buckets[key]
