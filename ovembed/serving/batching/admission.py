"""Admission by expected wait, and the throughput estimate it divides by: pure (no event loop, no
clock), so both are tested with plain numbers. The :class:`~ovembed.serving.batching.batcher.Batcher`
feeds them measurements.

A queue bounded in inputs (``--max_queue``) means minutes of waiting on a slow CPU and seconds on a
fast one; a client with a timeout gets a read timeout instead of an answer. Bounding the *expected
wait* instead (TEI sheds load with 429 the same way) answers at once: the request's tokens ahead of
it, counted in the order the fair queue serves them (:meth:`FairQueue.tokens_ahead
<ovembed.serving.batching.fair_queue.FairQueue.tokens_ahead>`), divided by the measured tokens per
second. Because that order is fair across requests, an interactive query has only about one
document of each queued request ahead of it and is admitted while a bulk request arriving behind
the same queue is refused: bulk traffic cannot lock small queries out. A request's own tokens are
not counted (it would wait for them on an idle server too), so no request is refused for its size
alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RETRY_AFTER_MAX = 60  # seconds: the longest Retry-After sent


@dataclass
class Throughput:
    """Tokens per second the engine completes, weighted by tokens: decayed sums of the tokens
    and engine seconds of completed batches, so a 1000-token batch counts 100 times a 10-token
    query (lone queries run far below the engine's batched rate). ``seed_tokens`` /
    ``seed_seconds``: a first measurement (the loader's warm-up), soon outweighed."""

    decay: float = 0.9  # weight kept by the past at each new batch
    tokens: float = 0.0
    seconds: float = 0.0

    @classmethod
    def seeded(cls, tokens_per_second: float, tokens: float = 16.0) -> Throughput:
        """An estimate that starts from ``tokens_per_second`` measured on ``tokens`` tokens."""
        if tokens_per_second <= 0 or not math.isfinite(tokens_per_second):
            return cls()
        return cls(tokens=tokens, seconds=tokens / tokens_per_second)

    def observe(self, tokens: int, seconds: float) -> None:
        """One completed batch of ``tokens`` real tokens that took ``seconds`` on the engine."""
        if tokens <= 0 or seconds <= 0 or not math.isfinite(seconds):
            return
        self.tokens = self.decay * self.tokens + tokens
        self.seconds = self.decay * self.seconds + seconds

    @property
    def per_stream(self) -> float:
        """Tokens per second of one infer request (0: not measured yet)."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def rate(self, slots: int) -> float:
        """Tokens per second of the engine with ``slots`` infer requests busy (they share the
        device, so each one's measured time already includes the others')."""
        return self.per_stream * max(1, slots)


@dataclass(frozen=True)
class Verdict:
    """Whether a request may queue; ``wait``: its expected seconds in the queue (0 when unknown);
    ``retry_after``: whole seconds to suggest to a refused client."""

    admit: bool
    wait: float = 0.0
    retry_after: int | None = None


ADMIT = Verdict(True)


@dataclass(frozen=True)
class AdmissionPolicy:
    """Refuse a request whose expected queue wait is over ``max_queue_wait`` seconds (0: never)."""

    max_queue_wait: float = 30.0

    def decide(self, tokens_ahead: float, tokens_per_second: float) -> Verdict:
        """``tokens_ahead``: queued tokens the engine serves before this request's last document
        (in fair order, its own excluded); ``tokens_per_second``: the
        measured rate (0: unknown, so admitted)."""
        if self.max_queue_wait <= 0 or tokens_per_second <= 0 or tokens_ahead <= 0:
            return ADMIT
        wait = tokens_ahead / tokens_per_second
        if wait <= self.max_queue_wait:
            return Verdict(True, wait)
        # After (wait - limit) seconds the work ahead has shrunk under the limit, if nothing
        # else arrives: when a retry may be admitted.
        retry = min(RETRY_AFTER_MAX, max(1, math.ceil(wait - self.max_queue_wait)))
        return Verdict(False, wait, retry)
