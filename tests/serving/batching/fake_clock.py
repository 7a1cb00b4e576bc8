"""A clock the batcher tests move by hand (implements ovembed.serving.batching.batcher.Clock), and an
observer that counts what the batcher reports."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any


class FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time stands still until :meth:`advance`, which runs the timers due, in order."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._timers: list[tuple[float, int, FakeHandle, Callable[..., Any], tuple[Any, ...]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> FakeHandle:
        handle = FakeHandle()
        heapq.heappush(self._timers, (when, next(self._order), handle, callback, args))
        return handle

    def advance(self, to: float) -> None:
        while self._timers and self._timers[0][0] <= to:
            when, _, handle, callback, args = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not handle.cancelled:
                callback(*args)
        self.now = max(self.now, to)


class CountingObserver:
    """A BatchObserver that counts batches, refusals and expired deadlines."""

    def __init__(self) -> None:
        self.batches = 0
        self.refused = 0
        self.expired = 0

    def batch_started(self, size: int, tokens: int, padded_tokens: int) -> None:
        self.batches += 1

    def batch_finished(self, size: int, seconds: float, failed: bool) -> None:
        pass

    def refused_by_wait(self) -> None:
        self.refused += 1

    def deadline_expired(self) -> None:
        self.expired += 1
