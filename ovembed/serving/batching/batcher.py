"""Dynamic batching across requests.

Two layers, so the policy can be tested without OpenVINO or an event loop:

- :class:`BatchPolicy` (pure): given the queued items, the time and how many infer requests
  are free, pick the next batch or say when to look again. Batches are bounded by a token
  budget (padded length x batch size, TEI's ``--max-batch-tokens``) and a size, hold similar
  lengths (little padding), always include the item at the head of the queue, and are split
  across idle infer requests so every stream gets work. The queue is in fair order
  (:mod:`ovembed.serving.batching.fair_queue`): requests take turns by tokens, so a small query
  behind a bulk request waits about one batch, not the whole bulk request.
- :class:`Batcher` (asyncio plumbing): a bounded queue per model (full -> ``Overloaded`` with
  a ``retry_after`` estimated from the recent throughput), admission by expected wait (the pure
  :class:`~ovembed.serving.batching.admission.AdmissionPolicy` decides, fed the measured
  :class:`~ovembed.serving.batching.admission.Throughput`), deadlines (:data:`~ovembed.serving.api.DEADLINE`:
  work not started by then is dropped, a late result discarded, the request fails with
  ``DeadlineExceeded``), all timed by an injectable :class:`Clock` (the event loop by default),
  event-driven scheduling (no background task: submissions and completions run the policy),
  numpy padding, results scattered back to each request's rows, cancellation drops work
  not yet started. An optional :class:`BatchObserver` hears about every batch (metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ovembed.errors import DeadlineExceeded, ModelNotReady, Overloaded
from ovembed.serving import tracing
from ovembed.serving.api import DEADLINE, BatchObserver, Executor, TokenIds
from ovembed.serving.batching.admission import AdmissionPolicy, Throughput
from ovembed.serving.batching.fair_queue import FairQueue
from ovembed.serving.batching.policy import BatchPolicy, Item, Job


@dataclass
class BatchResult:
    embeddings: np.ndarray  # float32 [n, dims], input order
    queue_seconds: float
    inference_seconds: float


class Handle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The time and timers the batcher runs on: the event loop (``loop.time``, ``loop.call_at``),
    or a fake one in tests. Deadlines (:data:`~ovembed.serving.api.DEADLINE`) are in its seconds."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Any, *args: Any) -> Handle: ...


class Batcher:
    """One model's queue and scheduler. Create and use it on the event loop thread.

    ``admission``: refuse requests by expected wait (None: only ``max_queue`` bounds the queue);
    ``clock``: None for the running event loop."""

    def __init__(self, engine: Executor, policy: BatchPolicy, *, max_queue: int, pad_id: int = 0,
                 name: str = "model", max_width: int | None = None,
                 observer: BatchObserver | None = None, admission: AdmissionPolicy | None = None,
                 clock: Clock | None = None) -> None:
        self.engine = engine
        self.observer = observer
        self.admission = admission
        self._clock = clock
        # seeded from the loader's warm-up (OpenVINOExecutor.warm_tokens_per_second) when it measured one
        self.throughput = Throughput.seeded(float(getattr(engine, "warm_tokens_per_second", 0.0)))
        self.policy = policy
        self.max_queue = max_queue
        self.pad_id = pad_id
        self.max_width = max_width  # never pad past the model's maximum length
        self.name = name
        self._queue: FairQueue[Item] = FairQueue()
        self._queued = 0  # live (not cancelled) items in the queue
        self._in_flight = 0
        self._seq = 0
        self._timer: Handle | None = None
        self._timer_at = math.inf
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._item_seconds = 0.0  # moving average of engine seconds per document (Retry-After)
        self._traced = False  # a traced request reached this batcher (serving.tracing)
        self._batch_traces: dict[int, tracing.BatchTrace] = {}  # id(batch) -> its trace, while it runs

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def rate(self) -> float:
        """Measured tokens per second of the whole engine (0: unknown yet)."""
        return self.throughput.rate(self.engine.slots)

    async def submit(self, docs: Sequence[TokenIds]) -> BatchResult:
        """Embed tokenized documents; rows come back in the order given.

        Raises ``Overloaded`` at once when the queue cannot take them all or they would wait
        longer than the admission policy allows, ``DeadlineExceeded`` when the request's
        :data:`~ovembed.serving.api.DEADLINE` passes before they are done (documents not yet
        sent to the engine are dropped). Cancelling the caller drops them too.
        """
        if self._closing:
            raise ModelNotReady(f"The model '{self.name}' is being unloaded")
        n = len(docs)
        if self._queued + n > self.max_queue:
            raise Overloaded(f"The model '{self.name}' is overloaded ({self._queued} inputs "
                             f"queued, limit {self.max_queue}); retry later", retry_after=self.retry_after())
        loop = self._loop = asyncio.get_running_loop()
        if self._clock is None:
            self._clock = loop
        now = self._clock.time()
        deadline = DEADLINE.get()
        if deadline is not None and now >= deadline:
            raise self._expired()
        lengths = [len(doc) for doc in docs]
        if self.admission is not None and self._queued:  # nothing queued: nothing ahead, admitted
            self._admit(lengths)
        # an engine with per_token outputs [batch, seq, dim]: each document gets its [length, dim] rows
        job = Job(docs, self.engine.dimensions, loop.create_future(), now,
                  per_token=getattr(self.engine, "per_token", False), deadline=deadline)
        if n == 0:
            return BatchResult(job.out, 0.0, 0.0)
        job.trace = tracing.job_trace()
        self._traced = self._traced or job.trace is not None
        self._queue.push([Item(job, i, lengths[i], now, self._seq + i) for i in range(n)])
        self._seq += n
        self._queued += n
        self._idle.clear()
        expiry = self._clock.call_at(deadline, self._expire, job) if deadline is not None else None
        self._schedule()
        try:
            await job.future
        except asyncio.CancelledError:
            self._cancel(job)
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
        start = job.dispatched_at if job.dispatched_at is not None else job.done_at
        return BatchResult(job.out, start - job.submitted_at, job.done_at - start)

    def _admit(self, lengths: Sequence[int]) -> None:
        """Raise ``Overloaded`` when the admission policy refuses a request of ``lengths``."""
        assert self.admission is not None
        # Batches running are not counted: they delay a request's start by one batch at most.
        verdict = self.admission.decide(self._queue.tokens_ahead(lengths), self.rate())
        if verdict.admit:
            return
        if self.observer is not None:
            self.observer.refused_by_wait()
        raise Overloaded(f"The model '{self.name}' is overloaded: this request would wait about "
                         f"{verdict.wait:.0f} s in its queue, over the limit of "
                         f"{self.admission.max_queue_wait:g} s; retry later", retry_after=verdict.retry_after)

    def _expired(self) -> DeadlineExceeded:
        if self.observer is not None:
            self.observer.deadline_expired()
        return DeadlineExceeded(f"Deadline exceeded: the request's time limit (x-request-timeout, "
                                f"--request_timeout or the gRPC deadline) ran out before the model "
                                f"'{self.name}' could compute it; its work not yet started was dropped")

    def _expire(self, job: Job) -> None:
        """``job``'s deadline passed: fail it, drop its queued work (running batches finish, their
        rows for it are discarded)."""
        if job.future.done():
            return
        job.future.set_exception(self._expired())
        self._cancel(job)

    def _cancel(self, job: Job) -> None:
        if job.cancelled:
            return
        job.cancelled = True
        self._queued -= job.undispatched
        job.undispatched = 0
        if self._queued == 0:  # compact: drop every dead item at once
            self._queue.compact()
        self._check_idle()

    # -- scheduling ---------------------------------------------------------------------

    def _schedule(self) -> None:
        assert self._clock is not None
        while True:
            self._queue.drop_dead_head()
            free = self.engine.slots - self._in_flight
            decision = self.policy.decide(self._queue, self._clock.time(), self._in_flight, free)
            if decision.batch is None:
                if decision.wake_at is not None:
                    self._arm_timer(decision.wake_at)
                return
            self._dispatch(decision.batch)

    def _arm_timer(self, when: float) -> None:
        assert self._clock is not None
        if self._timer is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._clock.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._schedule()

    def _remove(self, batch: list[Item]) -> None:
        self._queue.remove(batch)

    def retry_after(self) -> int:
        """Whole seconds until the queue has drained at the recent pace (1..60)."""
        seconds = self._queued * self._item_seconds / max(1, self.engine.slots)
        return min(60, max(1, math.ceil(seconds)))

    def _dispatch(self, batch: list[Item]) -> None:
        assert self._loop is not None and self._clock is not None
        self._remove(batch)
        now = self._clock.time()
        lengths = [it.length for it in batch]
        longest = max(lengths)
        docs: list[TokenIds] = []
        for it in batch:
            job = it.job
            assert job is not None
            docs.append(job.docs[it.index])
            job.undispatched -= 1
            if job.dispatched_at is None:
                job.dispatched_at = now
        width = self.policy.width(longest, len(batch), pad_lone=self.engine.pad_lone)
        if self.max_width is not None:
            width = max(longest, min(width, self.max_width))
        input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        if len(batch) == 1:
            # A lone document is padded like a batch when its engine measured that this pays
            # (Executor.pad_lone), although its exact length is less work: OpenVINO's CPU plugin
            # re-prepares the whole dynamic-shape graph whenever the input shape differs from the
            # previous inference's (~0.3-1 ms for MiniLM on 2 cores), and varied queries padded
            # to 8 change shape less often. Paired A/B, server, varied 5-20-token queries, padded
            # - exact p50: int8 -0.20 ms, static int8 -0.37 ms, fp32 +0.10 ms (2 Xeon cores).
            # Built without the mask arithmetic below: this is every single query's path.
            input_ids[0, :longest] = docs[0]
            attention_mask = np.zeros((1, width), dtype=np.int64)
            attention_mask[0, :longest] = 1
        else:
            for row, doc in enumerate(docs):
                input_ids[row, : lengths[row]] = doc
            attention_mask = (np.arange(width) < np.array(lengths)[:, None]).astype(np.int64)
        self._queued -= len(batch)
        self._in_flight += 1
        tokens = sum(lengths)
        loop = self._loop
        on_loop = threading.get_ident()
        if self.observer is not None:
            self.observer.batch_started(len(batch), tokens, width * len(batch))
        if self._traced and (batch_trace := tracing.batch_started(batch, self.name, width)) is not None:
            self._batch_traces[id(batch)] = batch_trace
        started = time.perf_counter()

        def on_done(result: np.ndarray | BaseException) -> None:  # any thread
            seconds = time.perf_counter() - started
            outcome: np.ndarray | BaseException = result
            if not isinstance(result, BaseException):
                try:  # the one copy: engine output rows -> each request's rows
                    for row, it in enumerate(batch):
                        job = it.job
                        if job is not None and not job.cancelled:
                            job.out[it.index] = result[row] if result.ndim == 2 else result[row, :it.length].copy()
                except Exception as exc:  # e.g. an output of the wrong shape
                    outcome = exc
            if threading.get_ident() == on_loop:  # run inline by start(): no wake-up to send
                loop.call_soon(self._finish, batch, outcome, seconds, tokens)
                return
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(self._finish, batch, outcome, seconds, tokens)

        try:
            self.engine.start(input_ids, attention_mask, on_done)
        except Exception as exc:
            self._finish(batch, exc, time.perf_counter() - started, tokens)

    def _finish(self, batch: list[Item], result: np.ndarray | BaseException,
                seconds: float = 0.0, tokens: int = 0) -> None:
        assert self._clock is not None
        self._in_flight -= 1
        now = self._clock.time()
        failed = isinstance(result, BaseException)
        if not failed and batch:
            per_item = seconds / len(batch)
            self._item_seconds = per_item if self._item_seconds == 0 else 0.8 * self._item_seconds + 0.2 * per_item
            self.throughput.observe(tokens, seconds)
        if self.observer is not None:
            self.observer.batch_finished(len(batch), seconds, failed)
        if self._batch_traces and (batch_trace := self._batch_traces.pop(id(batch), None)) is not None:
            batch_trace.finished(failed)
        for it in batch:
            job = it.job
            assert job is not None
            job.remaining -= 1
            if job.future.done():
                continue
            if job.expired(now):  # finished after its deadline (the timer has not run yet): discarded
                self._expire(job)
            elif failed:
                assert isinstance(result, BaseException)
                job.future.set_exception(result)
                self._cancel(job)  # its other items are not worth running
            elif job.remaining == 0:
                job.done_at = now
                job.future.set_result(None)
        self._check_idle()
        self._schedule()

    def _check_idle(self) -> None:
        if self._queued == 0 and self._in_flight == 0:
            self._idle.set()

    async def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, let queued and running batches finish (up to ``timeout``), then
        fail whatever is left with ``ModelNotReady``."""
        self._closing = True
        if self._loop is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        error = ModelNotReady(f"The model '{self.name}' was unloaded")
        for it in self._queue:
            if it.job is not None and not it.job.future.done():
                it.job.future.set_exception(error)
        self._queue.clear()
        self._queued = 0
