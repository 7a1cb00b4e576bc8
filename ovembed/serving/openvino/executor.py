"""The OpenVINO executor: runs the batcher's batches on a model's latency and throughput executors,
lone queries inline, on static-shape copies when it has them (:class:`OpenVINOExecutor`)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.errors import ConfigError
from ovembed.serving.openvino.lone import LONE_BUDGET_S, LONE_LENGTHS, LoneShapes

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger("ovembed.serving")


_ROLES = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


# Padded tokens (batch x width) up to which a batch runs on the latency executor when the
# model has a throughput executor too and nothing is running: a short query or a handful of them
# finishes sooner on every core at once; larger batches go to the streams, one per core.
LATENCY_TOKENS = 256
# A lone batch of at most INLINE_TOKENS padded tokens, with nothing running, runs synchronously on
# the calling thread (the event loop) while that inference takes at most INLINE_MAX_S on average
# (measured at warm-up and on every such batch): see OpenVINOExecutor.
INLINE_TOKENS = 64
INLINE_MAX_S = 0.010
# The inline time that decides is the median of this many recent inline inferences: one preempted
# by another process (tens of ms on a busy 2-core machine) must not send every lone query async.
INLINE_SAMPLES = 9


class OpenVINOExecutor:
    r"""One model's executors behind ``AsyncInferQueue``\ s; implements the batcher's ``Executor``.

    - The latency executor (``latency``: one stream, every core) runs a batch of at most
      :data:`LATENCY_TOKENS` padded tokens that finds nothing running; the throughput executor
      (``throughput``, when the plan gives one: single-thread streams) runs every other batch. They
      never run at once (two threads per core): :attr:`slots` is 1 while the latency executor runs.
    - A lone query (one batch of at most :data:`INLINE_TOKENS` padded tokens, nothing running) is
      inferred on the caller's thread (the event loop) while the median of the last
      :data:`INLINE_SAMPLES` such inferences is at most :data:`INLINE_MAX_S`; ``on_done`` has run
      when :meth:`start` returns.
    - Static-shape copies (:meth:`set_lone_shapes`): a lone query that fits one runs on the
      narrowest, padded to its width, so its graph never re-prepares for a new shape.

    Why and measurements: docs/architecture.md ("Executors") and docs/performance.md.
    """

    def __init__(self, latency: ov.CompiledModel, infer_requests: int | None = None, *,
                 throughput: ov.CompiledModel | None = None, latency_tokens: int = LATENCY_TOKENS,
                 inline: bool = True) -> None:
        import openvino as ov

        self.latency = latency
        self.throughput = throughput
        self._roles: list[tuple[int, str, Any]] = []
        for index, port in enumerate(latency.inputs):
            names = port.get_names()
            role = next((r for r in _ROLES if r in names), None)
            if role is None:
                raise ConfigError(f"model input {port.get_any_name()!r} is not one of "
                                  f"{', '.join(_ROLES)}")
            dtype = np.int32 if port.get_element_type() == ov.Type.i32 else np.int64
            self._roles.append((index, role, dtype))
        if not any(role == "input_ids" for _, role, _ in self._roles):
            raise ConfigError("the model has no input_ids input")
        n = infer_requests or int(latency.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        # One request more than the batcher ever runs at once: a batch's callback may still be
        # returning when the loop starts the next batch, and start_async would wait for it.
        self._queue = ov.AsyncInferQueue(latency, max(1, n) + 1)
        self._queue.set_callback(self._latency_callback)
        self._slots = max(1, n)
        self._lock = threading.Lock()  # the running counts: the loop adds, callback threads subtract
        self._throughput_queue: Any = None
        self._latency_tokens = latency_tokens
        self._latency_running = 0  # batches running on the latency executor
        self._throughput_running = 0
        self.batches = {"latency": 0, "throughput": 0}  # batches started on each (with a throughput executor)
        self._inline_request = latency.create_infer_request() if inline else None
        self._inline_times: deque[float] = deque(maxlen=INLINE_SAMPLES)  # recent inline inferences
        self._inline_skipped = 0
        self.inlined = 0
        if throughput is not None:
            m = max(1, int(throughput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            self._throughput_queue = ov.AsyncInferQueue(throughput, m + 1)
            self._throughput_queue.set_callback(self._throughput_callback)
            self._slots = m
        self.dimensions = 0
        self.per_token = False  # outputs [batch, seq, dim] (a token model): set at load
        self.pad_lone = True  # pad a lone batch like any other: set at load by _time_inline
        self.pad_id = 0  # what pads a lone query to a static width (the tokenizer's, set at load)
        self.warm_tokens_per_second = 0.0  # measured by time_inline at load (0: not measured)
        self._lone: list[tuple[int, Any]] = []  # (width, infer request of that static-shape copy), by width
        self.lone_static = 0  # lone queries run on a static-shape copy

    @property
    def slots(self) -> int:
        return 1 if self._latency_running and self._throughput_queue is not None else self._slots

    def inputs(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[int, np.ndarray]:
        feed: dict[int, np.ndarray] = {}
        for index, role, dtype in self._roles:
            if role == "input_ids":
                arr = input_ids
            elif role == "attention_mask":
                arr = attention_mask
            elif role == "token_type_ids":
                arr = np.zeros_like(input_ids)
            else:  # position_ids
                arr = np.ascontiguousarray(np.broadcast_to(
                    np.arange(input_ids.shape[1], dtype=np.int64), input_ids.shape))
            feed[index] = arr if arr.dtype == dtype else arr.astype(dtype)
        return feed

    @staticmethod
    def _callback(request: ov.InferRequest, on_done: Callable[[Any], None]) -> None:
        try:
            output = request.get_output_tensor(0).data
        except Exception as exc:  # pragma: no cover - OpenVINO failure surfaced to the batch
            on_done(exc)
            return
        on_done(output)

    def _throughput_callback(self, request: ov.InferRequest, on_done: Callable[[Any], None]) -> None:
        with self._lock:
            self._throughput_running -= 1
        self._callback(request, on_done)

    def _latency_callback(self, request: ov.InferRequest, on_done: Callable[[Any], None]) -> None:
        with self._lock:
            self._latency_running -= 1
        self._callback(request, on_done)

    @property
    def lone_widths(self) -> tuple[int, ...]:
        """The widths of the static-shape copies lone queries run on (none: every query is dynamic)."""
        return tuple(width for width, _ in self._lone)

    def set_lone_shapes(self, compiled: LoneShapes) -> None:
        """Run lone inline queries of up to each width (tokens) on ``compiled[width]``, a copy of
        the model compiled for input shape ``[1, width]``; an empty mapping drops them."""
        self._lone = [(width, compiled[width].create_infer_request()) for width in sorted(compiled)]

    def start(self, input_ids: np.ndarray, attention_mask: np.ndarray,
              on_done: Callable[[np.ndarray | BaseException], None]) -> None:
        if self._inline_request is not None and self._inline_now(input_ids.size):
            self._run_inline(*self._inline_feed(input_ids, attention_mask), on_done)
            return
        # The inputs are copied into the request's own tensors (share_inputs=False). With shared
        # buffers, a fresh engine running a (2, 32) batch and then a (2, 33) one on the queue's
        # second request returned wrong vectors for the second (max abs diff 0.12-0.15 on MiniLM,
        # OpenVINO 2026.4, CPU): test_openvino's test_async_batches_of_new_shapes_equal_infer.
        # The copy is a few hundred KB at most, microseconds beside the inference.
        feed = self.inputs(input_ids, attention_mask)
        with self._lock:
            latency = self._throughput_queue is None or (
                input_ids.size <= self._latency_tokens and not self._throughput_running and not self._latency_running)
            if latency:
                self._latency_running += 1
            else:
                self._throughput_running += 1
        if self._throughput_queue is not None:
            self.batches["latency" if latency else "throughput"] += 1
        try:
            (self._queue if latency else self._throughput_queue).start_async(feed, on_done, share_inputs=False)
        except BaseException:
            with self._lock:
                if latency:
                    self._latency_running -= 1
                else:
                    self._throughput_running -= 1
            raise

    def _inline_now(self, tokens: int) -> bool:
        if tokens > INLINE_TOKENS:
            return False
        if self.inline_seconds > INLINE_MAX_S:  # too slow to block the loop: try again now and then
            self._inline_skipped += 1
            if self._inline_skipped % 100:
                return False
        with self._lock:
            return not (self._throughput_running or self._latency_running)

    def _inline_feed(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[Any, dict[int, np.ndarray]]:
        """The request an inline batch runs on, and its inputs: one row that fits a static-shape
        copy goes to the narrowest such copy, padded to its width; the rest to the inline request."""
        if input_ids.shape[0] == 1:
            length = input_ids.shape[1]
            for width, request in self._lone:
                if length <= width:
                    ids = np.full((1, width), self.pad_id, dtype=input_ids.dtype)
                    ids[:, :length] = input_ids
                    mask = np.zeros((1, width), dtype=attention_mask.dtype)
                    mask[:, :length] = attention_mask
                    return request, self.inputs(ids, mask)
        return self._inline_request, self.inputs(input_ids, attention_mask)

    def _run_inline(self, request: Any, feed: dict[int, np.ndarray], on_done: Callable[[Any], None]) -> None:
        try:
            output = self._infer_inline(feed, request=request)
        except Exception as exc:  # pragma: no cover - OpenVINO failure surfaced to the batch
            on_done(exc)
            return
        self.inlined += 1
        if request is not self._inline_request:
            self.lone_static += 1
        on_done(output)

    def _infer_inline(self, feed: dict[int, np.ndarray], record: bool = True, request: Any = None) -> np.ndarray:
        """Synchronous inference on ``request`` (default: the inline request); records its time
        (with ``record``)."""
        if request is None:
            request = self._inline_request
        assert request is not None
        started = time.perf_counter()
        # The inputs are copied into the request's own tensors (at most INLINE_TOKENS each), not
        # shared: see start(). Done here rather than by infer(feed), whose Python input dispatch
        # costs ~60 us per query against ~6 us for these calls (2 Xeon cores, MiniLM).
        for index, array in feed.items():
            tensor = request.get_input_tensor(index)
            tensor.shape = array.shape
            np.copyto(tensor.data, array)
        request.infer()
        if record:
            self._inline_times.append(time.perf_counter() - started)
        return request.get_output_tensor(0).data  # type: ignore[no-any-return]

    @property
    def inline_seconds(self) -> float:
        """The median of the recent inline inferences' seconds (0 before any)."""
        times = sorted(self._inline_times)
        return times[len(times) // 2] if times else 0.0

    def time_inline(self, input_ids: np.ndarray, attention_mask: np.ndarray, runs: int = 5) -> float:
        """Warm-up: time the inline path (``runs`` times, after one run that pays the shape's setup)
        so that what decides whether a lone batch may block the event loop starts from this
        machine's speed. Returns :attr:`inline_seconds`."""
        if self._inline_request is None:
            return 0.0
        feed = self.inputs(input_ids, attention_mask)
        self._infer_inline(feed)
        self._inline_times.clear()
        for _ in range(runs):
            self._infer_inline(feed)
        if self.inline_seconds > 0:  # the batcher's first throughput estimate (admission by expected wait)
            self.warm_tokens_per_second = float(attention_mask.sum()) / self.inline_seconds
        return self.inline_seconds

    def time_lone(self, token: int, pad_id: int, multiple: int, rounds: int = 3) -> dict[str, float]:
        """The median seconds of lone queries of :data:`LONE_LENGTHS` tokens, each way:
        ``exact`` (at their length) and ``padded`` (to ``multiple``) on the inline request, and
        with static-shape copies (:meth:`set_lone_shapes`) ``static`` (padded to the narrowest
        copy that fits, on it). The ways take turns in blocks, in an order that rotates each
        round, after a warm-up round (a shape's first run pays its setup). OpenVINO re-prepares
        a dynamic-shape graph whenever the input shape changes, which padding makes rarer and a
        static copy never does, while padded tokens are computed too: which way wins depends on
        the model, its precision and the CPU. Empty when not timed: without an inline request, or
        when the warm-up round took over :data:`LONE_BUDGET_S` (a large model: the full timing
        would add seconds to every load)."""
        if self._inline_request is None:
            return {}
        ways: dict[str, list[tuple[Any, dict[int, np.ndarray]]]] = {"exact": [], "padded": []}
        if self._lone:
            ways["static"] = []
        for length in LONE_LENGTHS:
            for way, runs in ways.items():
                width = -(-length // multiple) * multiple if way == "padded" else length
                ids = np.full((1, width), pad_id, dtype=np.int64)
                ids[0, :length] = token
                mask = np.zeros((1, width), dtype=np.int64)
                mask[0, :length] = 1
                runs.append(self._inline_feed(ids, mask) if way == "static" else
                            (self._inline_request, self.inputs(ids, mask)))
        names = list(ways)
        times: dict[str, list[float]] = {way: [] for way in names}
        warm_up = time.perf_counter()
        for r in range(rounds + 1):
            if r == 1 and time.perf_counter() - warm_up > LONE_BUDGET_S:
                return {}
            for way in names[r % len(names):] + names[:r % len(names)]:
                for request, feed in ways[way]:
                    started = time.perf_counter()
                    self._infer_inline(feed, record=False, request=request)
                    if r:
                        times[way].append(time.perf_counter() - started)
        return {way: float(np.median(values)) for way, values in times.items()}

    def infer(self, input_ids: np.ndarray, attention_mask: np.ndarray, *, throughput: bool = False) -> np.ndarray:
        """Synchronous inference on a private request (warm-up, tests); ``throughput``: on the
        throughput executor."""
        compiled = self.throughput if throughput and self.throughput is not None else self.latency
        request = compiled.create_infer_request()
        request.infer(self.inputs(input_ids, attention_mask))
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)

    def close(self) -> None:
        self._queue.wait_all()
        if self._throughput_queue is not None:
            self._throughput_queue.wait_all()
