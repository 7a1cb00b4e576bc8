"""Which queued documents form the next batch, and when: pure (no event loop, no clock), so it is
tested without OpenVINO (see :mod:`ovembed.serving.batching.batcher` for the asyncio side)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ovembed.serving.api import TokenIds

if TYPE_CHECKING:
    import asyncio

    from ovembed.serving.tracing import JobTrace

# Widths are padded to a multiple of this: it bounds the number of distinct shapes, and
# OpenVINO's CPU plugin pays extra on the first run of each shape (~5% overall here).
PAD_MULTIPLE = 8


def padded_width(longest: int, multiple: int = PAD_MULTIPLE) -> int:
    """``longest`` tokens rounded up to a multiple of ``multiple``."""
    return -(-longest // multiple) * multiple


class Job:
    """One request's documents, its result rows and its future."""

    __slots__ = ("cancelled", "deadline", "dispatched_at", "docs", "done_at", "future", "out", "remaining",
                 "submitted_at", "trace", "undispatched")

    def __init__(self, docs: Sequence[TokenIds], dims: int, future: asyncio.Future[None],
                 now: float, *, per_token: bool = False, deadline: float | None = None) -> None:
        self.docs = docs
        # per_token: one float32 [length, dims] array per document (an object array)
        self.out = np.empty(len(docs), dtype=object) if per_token else np.empty((len(docs), dims), dtype=np.float32)
        self.future = future
        self.remaining = len(docs)  # items whose result has not arrived
        self.undispatched = len(docs)  # items still in the queue
        self.cancelled = False
        self.submitted_at = now
        self.dispatched_at: float | None = None
        self.done_at = now
        self.trace: JobTrace | None = None  # the request's trace (serving.tracing), when traced
        self.deadline = deadline  # clock time after which its work is not started (None: never)

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


@dataclass(eq=False)
class Item:
    """One document waiting in a batcher queue."""

    job: Job | None  # None only in policy tests
    index: int  # row in the job
    length: int  # tokens, special tokens included
    arrival: float  # clock time it was queued
    seq: int  # global arrival order (ties)
    tag: float = 0.0  # fair-queueing start tag (FairQueue.push): the service order

    @property
    def dropped(self) -> bool:
        return self.job is not None and self.job.cancelled


@dataclass(frozen=True)
class Decision:
    batch: list[Item] | None = None  # dispatch this now
    wake_at: float | None = None  # else look again at this time (None: on the next event)


@dataclass(frozen=True)
class BatchPolicy:
    """Which queued items form the next batch, and when.

    - No free infer request: wait. Idle engine: dispatch at once (zero wait).
    - Busy engine with a free request: dispatch when the batch is full, else when its head
      item has waited ``max_wait`` seconds.
    - The budget of one batch is ``max_batch_tokens``, shrunk to share the queued tokens across
      all infer requests (never below ``min_split_tokens``), so a single large request
      keeps every stream busy.
    """

    max_batch_tokens: int = 16384
    max_batch_size: int = 64
    max_wait: float = 0.002
    min_split_tokens: int = 512
    window: int = 256  # queued items considered per decision (from the head, in service order)
    pad_multiple: int = PAD_MULTIPLE

    def width(self, longest: int, size: int = 2, *, pad_lone: bool = True) -> int:
        """The padded width of a batch of ``size`` documents whose longest has ``longest`` tokens; a lone
        document (``size`` 1) is padded only with ``pad_lone`` (its executor's measurement at load)."""
        if size == 1 and not pad_lone:
            return longest
        return padded_width(longest, self.pad_multiple)

    def decide(self, queue: Sequence[Item], now: float, in_flight: int,
               free_slots: int) -> Decision:
        if free_slots <= 0 or not queue:
            return Decision()
        window = _take(queue, self.window, now)
        if not window:
            return Decision()
        budget = self.budget(sum(it.length for it in window), in_flight + free_slots)
        batch = self.form(window, budget)
        if in_flight == 0 or self.is_full(batch, len(window), budget):
            return Decision(batch=batch)
        deadline = window[0].arrival + self.max_wait
        if now >= deadline:
            return Decision(batch=batch)
        return Decision(wake_at=deadline)

    def budget(self, queued_tokens: int, slots: int) -> int:
        share = math.ceil(queued_tokens / max(slots, 1))
        return min(self.max_batch_tokens, max(self.min_split_tokens, share))

    def is_full(self, batch: Sequence[Item], candidates: int, budget: int) -> bool:
        if len(batch) >= self.max_batch_size or len(batch) < candidates:
            return True
        padded = self.width(max(it.length for it in batch))
        return padded * (len(batch) + 1) > budget

    def form(self, window: Sequence[Item], budget: int) -> list[Item]:
        """Grow a batch around the head item (the queue's first, in fair order: see
        :mod:`~ovembed.serving.batching.fair_queue`) through the length-sorted window, each step
        taking the neighbour that adds the least padding, while padded tokens fit ``budget``.
        The head item always goes, even alone over budget."""
        oldest = window[0]
        cands = sorted(window, key=lambda it: (it.length, it.seq))
        p = cands.index(oldest)
        lo = hi = p
        longest = oldest.length
        width = self.width
        while hi - lo + 1 < self.max_batch_size:
            n = hi - lo + 1
            best: tuple[int, int, int] | None = None  # (waste, seq, side)
            if lo > 0 and width(longest) * (n + 1) <= budget:
                left = cands[lo - 1]
                best = (longest - left.length, left.seq, -1)
            if hi + 1 < len(cands) and width(cands[hi + 1].length) * (n + 1) <= budget:
                right = cands[hi + 1]
                option = ((right.length - longest) * n, right.seq, 1)
                if best is None or option < best:
                    best = option
            if best is None:
                break
            if best[2] < 0:
                lo -= 1
            else:
                hi += 1
                longest = cands[hi].length
        return cands[lo:hi + 1]


def _take(queue: Sequence[Item], limit: int, now: float) -> list[Item]:
    """The first ``limit`` items neither cancelled nor past their request's deadline (work not
    started by its deadline is never started)."""
    out: list[Item] = []
    for it in queue:
        job = it.job
        if job is not None and (job.cancelled or (job.deadline is not None and now >= job.deadline)):
            continue
        out.append(it)
        if len(out) >= limit:
            break
    return out
