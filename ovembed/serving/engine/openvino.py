"""Load one model folder into a compiled OpenVINO model ready for batches.

``load_model`` reads graph.pbtxt, the IR and tokenizer.json, appends pooling and L2
normalisation to the graph, compiles it on the requested device with the graph's plugin_config
(plus defaults), warms it up and wraps it in an :class:`OpenVINOEngine` (an ``AsyncInferQueue``
sized from ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``). It blocks: call it in a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import Executors, ServeConfig
from ovembed.errors import ConfigError
from ovembed.graphs import GRAPH_FILENAME, GraphOptions, RerankGraphOptions, read_graph
from ovembed.heads.st_modules import HeadSpec, UnmappableModule, served_head
from ovembed.hf_files import declared_max_length, read_json_object
from ovembed.prompts import prompts_from_record
from ovembed.repository import read_record
from ovembed.serving.engine.batcher import BatchPolicy
from ovembed.serving.engine.chunking import PairChunker
from ovembed.serving.engine.devices import check_device, device_info, device_summary, primary_device
from ovembed.serving.engine.interface import ModelInfo
from ovembed.serving.engine.pooling import resolve_pooling
from ovembed.serving.engine.tokenizer import ServingTokenizer
from ovembed.serving.engine.weights import (
    PrivateWeights,
    pooled_ir,
    private_weights,
    release_file_pages,
    trim_heap,
)

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger("ovembed.serving")

MODEL_FILENAME = "openvino_model.xml"
_CHECK_FAILED = re.compile(r"Check '.*' failed at \S+:\d+:?")
_ROLES = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def resolve_max_length(model_dir: Path, record: dict[str, Any]) -> int:
    """ovembed_model.json ``max_length``; else what the HF files declare; else 512."""
    value = record.get("max_length")
    if isinstance(value, int) and value > 0:
        return value
    declared = declared_max_length(model_dir)
    return declared[0] if declared else 512


def detect_precision(record: dict[str, Any], model: ov.Model) -> str:
    """The weight format the exporter recorded, else the dominant weight element type."""
    recorded = record.get("weight_format")
    if isinstance(recorded, str) and recorded:
        return recorded
    sizes: dict[str, int] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant":
            continue
        shape = op.get_output_partial_shape(0)
        if not shape.is_static:
            continue
        count = int(np.prod([d.get_length() for d in shape])) if len(shape) else 1
        if count >= 4096:
            name = op.get_output_element_type(0).get_type_name()
            sizes[name] = sizes.get(name, 0) + count
    if any(t in sizes for t in ("u4", "i4", "nf4")):
        return "int4"
    if any(t in sizes for t in ("u8", "i8")):
        return "int8"
    if sizes and max(sizes, key=lambda k: sizes[k]) in ("f16", "bf16"):
        return "fp16" if "f16" in sizes else "bf16"
    return "fp32"


def inference_precision(graph: GraphOptions | RerankGraphOptions, cfg: ServeConfig, device: str,
                        precision: str) -> tuple[str | None, str]:
    """(INFERENCE_PRECISION_HINT to set, None for the device's default; why), from
    ``--inference_precision``, then graph.pbtxt's plugin_config, then ``auto``:

    - fp32/fp16 models on CPU compute in f32: CPUs with AMX/AVX512-BF16 would otherwise run them
      in bf16 (about 3x faster, but a vector then depends on what it is batched with: up to
      1.8e-3 apart, cosine 0.99993, measured on MiniLM); f32 keeps it within 1e-5.
    - int8/int4 models and other devices: the device's default (bf16 on AMX/AVX512-BF16 CPUs).
    """
    if cfg.inference_precision != "auto":
        return cfg.inference_precision, f"--inference_precision {cfg.inference_precision}"
    given = graph.plugin_config.get("INFERENCE_PRECISION_HINT")
    if given is not None:
        return str(given), "INFERENCE_PRECISION_HINT in graph.pbtxt plugin_config"
    if device.upper().startswith("CPU") and precision in ("fp32", "fp16"):
        return "f32", f"auto: {precision} weights on CPU compute in f32 (batch-invariant)"
    return None, f"auto: the device's default for {precision} weights"


def plugin_config(graph: GraphOptions | RerankGraphOptions, cfg: ServeConfig, device: str,
                  precision: str) -> dict[str, str]:
    """graph.pbtxt's plugin_config, as strings, plus defaults:

    - ``PERFORMANCE_HINT LATENCY`` on CPU when neither a hint nor NUM_STREAMS is given: the
      batcher already supplies the parallelism (one batch uses every core), and it halves the
      latency of single short requests compared with THROUGHPUT.
    - ``INFERENCE_PRECISION_HINT`` from :func:`inference_precision`.
    - ``CACHE_DIR`` from ``--cache_dir`` (compiled blobs cached: fast restarts), with
      ``CACHE_MODE OPTIMIZE_SIZE`` on CPU: the blob holds no weights, which are mapped from
      the compiled IR's own .bin, once (see :mod:`ovembed.serving.engine.weights`).
    """
    out: dict[str, str] = {}
    for key, value in graph.plugin_config.items():
        out[str(key)] = ("YES" if value else "NO") if isinstance(value, bool) else str(value)
    if device.upper().startswith("CPU") and "PERFORMANCE_HINT" not in out and "NUM_STREAMS" not in out:
        out["PERFORMANCE_HINT"] = "LATENCY"
    hint, _ = inference_precision(graph, cfg, device, precision)
    if hint is not None:
        out["INFERENCE_PRECISION_HINT"] = hint
    if cfg.cache_dir is not None:
        out["CACHE_DIR"] = str(cfg.cache_dir)
        if device.upper().startswith("CPU"):
            out.setdefault("CACHE_MODE", "OPTIMIZE_SIZE")
    return out


# Padded tokens (batch x width) up to which a batch runs on the one-stream executor when the
# engine has a multi-stream one too and nothing is running: a short query or a handful of them
# finishes sooner on every core at once; larger batches go to the streams, one per core.
LATENCY_TOKENS = 256
# A lone batch of at most INLINE_TOKENS padded tokens, with nothing running, runs synchronously on
# the calling thread (the event loop) while that inference takes at most INLINE_MAX_S on average
# (measured at warm-up and on every such batch): see OpenVINOEngine.
INLINE_TOKENS = 64
INLINE_MAX_S = 0.010
# The inline time that decides is the median of this many recent inline inferences: one preempted
# by another process (tens of ms on a busy 2-core machine) must not send every lone query async.
INLINE_SAMPLES = 9
# Lone queries' lengths (tokens) timed at load, exact and padded, to decide whether padding a lone
# query pays for this model on this machine: see OpenVINOEngine.time_lone.
LONE_LENGTHS = (5, 7, 13, 10, 6, 15, 12, 9, 21, 27)  # padded to 8, most change shape
# Widths (tokens) of the static-shape copies a model may get for lone queries, in the order they
# are compiled while they fit in --lone_shapes_max_mb (the most useful first: most queries are
# 9-16 tokens, then 8 or fewer); a lone query of up to 32 tokens is padded to the narrowest that fits.
LONE_WIDTHS = (16, 8, 32)
# The copies cost memory, so they are kept only when clearly faster: their lone queries' p50 at most
# this fraction of the dynamic graph's (int8 MiniLM measured 0.64, static int8 0.73; fp32 0.93-1.07,
# which noise alone would decide).
LONE_STATIC_GAIN = 0.9
# The warm-up round of that timing (20-30 lone queries, most of them a new shape: MiniLM 0.1-0.3 s
# on 2 cores) may take this long; a slower model (a lone query over ~30 ms, where a shape change
# matters less) is not timed further and keeps the default, padded.
LONE_BUDGET_S = 1.0


LoneShapes = dict[int, "ov.CompiledModel"]  # static-shape copies by width (OpenVINOEngine.set_lone_shapes)


class OpenVINOEngine:
    """A compiled model behind an ``AsyncInferQueue``; implements the batcher's ``Engine``.

    With ``bulk`` (the same model compiled with several single-thread streams, see
    :func:`bulk_config`) each batch picks its executor: a small batch (at most
    :data:`LATENCY_TOKENS` padded tokens) that finds nothing running goes to ``compiled`` (one
    stream, every core: the lowest latency), every other batch to ``bulk`` (the highest
    throughput). The two never run at once (that would put two threads on each core):
    :attr:`slots` is 1 while a small batch runs, else the bulk executor's request count.

    ``inline``: a lone batch of at most :data:`INLINE_TOKENS` padded tokens that finds nothing
    running is inferred synchronously by the caller (the batcher, on the event loop), and
    ``on_done`` is called before :meth:`start` returns. A single short query is the common case
    of interactive traffic, and this is how the raw engine runs it: the calling thread is one of
    OpenVINO's compute threads. ``start_async`` instead wakes a stream thread, adds a third busy
    thread on 2 cores, and hands the result back through a callback thread and the loop's self-pipe
    (paired A/B on 2 Zen 4 cores, MiniLM: single query fp32 -0.21 .. -0.91 ms, int8 -0.16 ..
    -0.36 ms; 16 concurrent clients x1.02 .. x1.14). The loop is blocked meanwhile, so this only
    happens while an inline inference takes at most :data:`INLINE_MAX_S` (a
    big model's lone query goes async; one in 100 is tried inline again); nothing else can run on
    the engine then anyway. That time is the median of the last :data:`INLINE_SAMPLES` inline
    inferences, not a moving average: one inference preempted by another process (or paused by a
    sampling profiler) for 50 ms must not send the next few hundred lone queries async.

    Lone shapes (:meth:`set_lone_shapes`): copies of the model compiled for one row of a fixed
    width. OpenVINO's CPU plugin re-prepares a dynamic-shape graph (shape inference, kernels,
    memory) whenever the input shape differs from the previous inference's: ~1 ms for int8
    MiniLM on 2 Xeon cores, half its lone query. A lone inline query that fits one of these
    widths is padded to it and runs on that copy, whose shape never changes; the timing at load
    (:meth:`time_lone`) keeps them only when that is faster.
    """

    def __init__(self, compiled: ov.CompiledModel, infer_requests: int | None = None, *,
                 bulk: ov.CompiledModel | None = None, latency_tokens: int = LATENCY_TOKENS,
                 inline: bool = True) -> None:
        import openvino as ov

        self.compiled = compiled
        self.bulk = bulk
        self._roles: list[tuple[int, str, Any]] = []
        for index, port in enumerate(compiled.inputs):
            names = port.get_names()
            role = next((r for r in _ROLES if r in names), None)
            if role is None:
                raise ConfigError(f"model input {port.get_any_name()!r} is not one of "
                                  f"{', '.join(_ROLES)}")
            dtype = np.int32 if port.get_element_type() == ov.Type.i32 else np.int64
            self._roles.append((index, role, dtype))
        if not any(role == "input_ids" for _, role, _ in self._roles):
            raise ConfigError("the model has no input_ids input")
        n = infer_requests or int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        # One request more than the batcher ever runs at once: a batch's callback may still be
        # returning when the loop starts the next batch, and start_async would wait for it.
        self._queue = ov.AsyncInferQueue(compiled, max(1, n) + 1)
        self._queue.set_callback(self._small_callback)
        self._slots = max(1, n)
        self._lock = threading.Lock()  # the running counts: the loop adds, callback threads subtract
        self._bulk_queue: Any = None
        self._latency_tokens = latency_tokens
        self._small_running = 0  # batches running on ``compiled``
        self._bulk_running = 0
        self.batches = {"small": 0, "bulk": 0}  # batches started on each executor (with ``bulk``)
        self._inline_request = compiled.create_infer_request() if inline else None
        self._inline_times: deque[float] = deque(maxlen=INLINE_SAMPLES)  # recent inline inferences
        self._inline_skipped = 0
        self.inlined = 0
        if bulk is not None:
            m = max(1, int(bulk.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            self._bulk_queue = ov.AsyncInferQueue(bulk, m + 1)
            self._bulk_queue.set_callback(self._bulk_callback)
            self._slots = m
        self.dimensions = 0
        self.pad_lone = True  # pad a lone batch like any other: set at load by _time_inline
        self.pad_id = 0  # what pads a lone query to a static width (the tokenizer's, set at load)
        self._lone: list[tuple[int, Any]] = []  # (width, infer request of that static-shape copy), by width
        self.lone_static = 0  # lone queries run on a static-shape copy

    @property
    def slots(self) -> int:
        return 1 if self._small_running and self._bulk_queue is not None else self._slots

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

    def _bulk_callback(self, request: ov.InferRequest, on_done: Callable[[Any], None]) -> None:
        with self._lock:
            self._bulk_running -= 1
        self._callback(request, on_done)

    def _small_callback(self, request: ov.InferRequest, on_done: Callable[[Any], None]) -> None:
        with self._lock:
            self._small_running -= 1
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
            small = self._bulk_queue is None or (
                input_ids.size <= self._latency_tokens and not self._bulk_running and not self._small_running)
            if small:
                self._small_running += 1
            else:
                self._bulk_running += 1
        if self._bulk_queue is not None:
            self.batches["small" if small else "bulk"] += 1
        try:
            (self._queue if small else self._bulk_queue).start_async(feed, on_done, share_inputs=False)
        except BaseException:
            with self._lock:
                if small:
                    self._small_running -= 1
                else:
                    self._bulk_running -= 1
            raise

    def _inline_now(self, tokens: int) -> bool:
        if tokens > INLINE_TOKENS:
            return False
        if self.inline_seconds > INLINE_MAX_S:  # too slow to block the loop: try again now and then
            self._inline_skipped += 1
            if self._inline_skipped % 100:
                return False
        with self._lock:
            return not (self._bulk_running or self._small_running)

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
        padded_width = BatchPolicy(pad_multiple=multiple).width
        ways: dict[str, list[tuple[Any, dict[int, np.ndarray]]]] = {"exact": [], "padded": []}
        if self._lone:
            ways["static"] = []
        for length in LONE_LENGTHS:
            for way, runs in ways.items():
                width = padded_width(length) if way == "padded" else length
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

    def infer(self, input_ids: np.ndarray, attention_mask: np.ndarray, *, bulk: bool = False) -> np.ndarray:
        """Synchronous inference on a private request (warm-up, tests); ``bulk``: on the
        multi-stream executor."""
        compiled = self.bulk if bulk and self.bulk is not None else self.compiled
        request = compiled.create_infer_request()
        request.infer(self.inputs(input_ids, attention_mask))
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)

    def close(self) -> None:
        self._queue.wait_all()
        if self._bulk_queue is not None:
            self._bulk_queue.wait_all()


@dataclass(frozen=True)
class RerankSetup:
    """What a rerank servable needs besides the engine and tokenizer."""

    chunker: PairChunker
    max_allowed_chunks: int
    max_doc_length: int


@dataclass
class LoadedModel:
    info: ModelInfo
    engine: OpenVINOEngine
    tokenizer: ServingTokenizer
    warning: str | None = None  # served, but something the operator should know (shown in /v1/config)
    rerank: RerankSetup | None = None  # set for rerank models


def _pooled_model(model: ov.Model, graph: GraphOptions, spec: HeadSpec) -> ov.Model:
    from ovembed.heads.embeddings import add_head

    outputs = model.outputs
    if len(outputs) == 1 and outputs[0].get_partial_shape().rank.get_length() == 2:
        if graph.normalize_embeddings:  # already pooled: only normalise
            import openvino as ov
            import openvino.opset13 as ops

            axes = ops.constant(np.array([1], dtype=np.int64))
            norm = ops.normalize_l2(outputs[0], axes, 1e-12, "max")
            model = ov.Model([ops.result(norm)], model.get_parameters(), model.get_friendly_name())
        return model
    return add_head(model, spec)


def load_model(core: ov.Core, name: str, base_path: Path, cfg: ServeConfig,
               graph_file: str = GRAPH_FILENAME) -> LoadedModel:
    """Read, compile and warm up the model in ``base_path`` (the folder with ``graph_file``)."""
    started = time.perf_counter()
    base_path = Path(base_path)
    if not base_path.is_dir():
        raise ConfigError(f"model folder {base_path} does not exist")
    graph = read_graph(base_path, graph_file)
    model_dir = graph.model_dir(base_path)
    xml = model_dir / MODEL_FILENAME
    if not xml.is_file():
        raise ConfigError(f"{xml} not found")
    record = read_record(base_path) or read_record(model_dir)
    choice = resolve_pooling(graph.pooling, model_dir, record)
    if choice.warning is not None:
        log.warning("model %s: %s", name, choice.warning)
    else:
        log.info("model %s: pooling %s (from %s)", name, choice.pooling.value, choice.origin)
    graph = replace(graph, pooling=choice.pooling)
    try:  # the recorded sentence-transformers chain; refused when modules.json holds a module it lacks
        spec = served_head(model_dir, record, choice.pooling, graph.normalize_embeddings)
    except UnmappableModule as exc:
        raise ConfigError(f"model {name} is not served: {exc}") from None
    device = cfg.target_device or graph.target_device
    check_device(core, device)

    # Weights come from a private copy (weights.py): files in the repository may change at
    # any time without reaching the mapping this version serves from.
    with loading_errors(name, xml):
        created = int(xml.stat().st_mtime)
        with private_weights(xml.with_suffix(".bin"), cfg.cache_dir) as weights:
            tokenizer, max_length = _tokenizer(base_path, model_dir, record)
            head = {"pooling": str(graph.pooling), "normalize": graph.normalize_embeddings, "head": spec.key()}
            compiled, bulk, precision, mapped, lone = compile_executors(
                core, xml, weights, lambda model: _pooled_model(model, graph, spec), graph, record, cfg, device, head,
                lone_widths=tuple(w for w in LONE_WIDTHS if w <= max_length))
            release_file_pages(*mapped)  # compiling read every weight; most now live repacked
            engine = _warm_up(name, compiled, bulk, tokenizer, max_length, lone)
            if lone and not engine.lone_widths:  # compiled, timed and dropped: free their memory now
                lone.clear()
                trim_heap()
            released = release_file_pages(*mapped)

    phys = primary_device(core, device)
    dev = device_info(core, phys)
    exec_precision = property_text(compiled, "INFERENCE_PRECISION_HINT")
    streams = property_text(compiled, "NUM_STREAMS")
    info = ModelInfo(
        name=name, dimensions=engine.dimensions, max_length=max_length, pooling=choice.pooling,
        normalize=graph.normalize_embeddings, truncate=graph.truncate, device=device,
        precision=precision, created=created,
        prompts=prompts_from_record(record).with_default(cfg.default_prompt_name), pool_prompt=spec.include_prompt,
    )
    _, why = inference_precision(graph, cfg, device, precision)
    log.info("model %s computes in %s (%s)", name, exec_precision or "the device's default", why)
    if bulk is not None:
        streams = f"{streams} (small batches) + {property_text(bulk, 'NUM_STREAMS')} (large batches)"
    log.info("model %s ready on %s (%s): weights %s, inference precision %s, %s stream(s), "
             "%d infer request(s), %d dims, max_length %d, loaded in %.2f s; %.0f MB of "
             "mapped weights released", name, device, dev.full_name, precision,
             exec_precision or "default", streams, engine.slots, engine.dimensions, max_length,
             time.perf_counter() - started, released / 2**20)
    log.info("model %s device %s", name, device_summary(dev, precision, exec_precision))
    return LoadedModel(info, engine, tokenizer, choice.warning)


def compile_private(core: ov.Core, xml: Path, weights: PrivateWeights, build: Callable[[ov.Model], ov.Model],
                    graph: GraphOptions | RerankGraphOptions, record: dict[str, Any], cfg: ServeConfig,
                    device: str, head: dict[str, object]) -> tuple[ov.CompiledModel, str, list[Path]]:
    """Read ``xml`` with the private copy ``weights``, append the head (``build``) and compile:
    (compiled model, weight precision, the weight files it maps). ``head`` describes what
    ``build`` appends (it keys the cached IR with ``--cache_dir``)."""
    compiled, _, precision, mapped, _ = compile_executors(core, xml, weights, build, graph, record, cfg,
                                                          device, head, bulk=False)
    return compiled, precision, mapped


@contextmanager
def loading_errors(name: str, xml: Path) -> Iterator[None]:
    """What reading, compiling and warming up ``xml`` raises, as one ConfigError naming the file:
    OpenVINO's full text goes to the log, its useful line into the reason (/v1/config)."""
    try:
        yield
    except ValueError as exc:
        raise ConfigError(f"{xml}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {xml.with_suffix('.bin')}: {exc.strerror or exc}") from None
    except RuntimeError as exc:
        log.error("model %s: OpenVINO failed to load %s:\n%s", name, xml.parent, str(exc).strip())
        raise ConfigError(f"OpenVINO could not load {xml.parent}: {openvino_reason(exc)}") from None


@dataclass(frozen=True)
class HeadModel:
    """A task head's model compiled from its private weights and warmed up (:func:`compile_head_model`)."""

    engine: OpenVINOEngine
    compiled: ov.CompiledModel
    precision: str  # of the weights
    created: int  # the IR's mtime, the version's creation time
    released: int  # bytes of mapped weight pages given back after warm-up


def compile_head_model(core: ov.Core, name: str, xml: Path, build: Callable[[ov.Model], ov.Model],
                       graph: Any, record: dict[str, Any], cfg: ServeConfig, device: str,
                       head: dict[str, object], tokenizer: ServingTokenizer,
                       warm_shapes: tuple[tuple[int, int], ...]) -> HeadModel:
    """Compile ``xml`` plus the head ``build`` appends (one executor) and run ``warm_shapes``
    (batch, length) once, since first runs pay shape setup; ``engine.dimensions`` is the output width."""
    with loading_errors(name, xml):
        created = int(xml.stat().st_mtime)
        with private_weights(xml.with_suffix(".bin"), cfg.cache_dir) as weights:
            compiled, precision, mapped = compile_private(core, xml, weights, build, graph, record, cfg, device, head)
            release_file_pages(*mapped)  # compiling read every weight; most now live repacked
            engine = OpenVINOEngine(compiled)
            for batch, length in warm_shapes:
                ids = np.full((batch, length), tokenizer.pad_id + 1, dtype=np.int64)
                out = engine.infer(ids, np.ones_like(ids))
            engine.dimensions = int(out.shape[1])
            _time_inline(name, engine, tokenizer)
            released = release_file_pages(*mapped)
    return HeadModel(engine, compiled, precision, created, released)


def bulk_config(config: dict[str, str], given: dict[str, Any], device: str, precision: str,
                executors: Executors = Executors.AUTO) -> dict[str, str] | None:
    """The plugin config of the second, multi-stream executor (:class:`OpenVINOEngine`), or None
    when there is none (:func:`bulk_plan` says why)."""
    return bulk_plan(config, given, device, precision, executors)[0]


def bulk_plan(config: dict[str, str], given: dict[str, Any], device: str, precision: str,
              executors: Executors = Executors.AUTO) -> tuple[dict[str, str] | None, str]:
    """(plugin config of the second, multi-stream executor or None, why). There is one only on
    CPU, when graph.pbtxt keeps the exported default (``given``, its plugin_config:
    ``NUM_STREAMS 1`` or nothing, no hint, no thread setting: explicit settings there win), and
    ``executors`` (``--executors``) is ``two``, or ``auto`` with int8/int4 weights.

    Measured on 2 cores (MiniLM, Sapphire Rapids): two single-thread streams embed batches of
    256-token passages faster than one two-thread stream (int8 and fp32 alike), while a single
    short query is fastest on one stream with every core. The second executor repacks the
    weights again: peak RSS under load fp32 281 -> 389 MB, static int8 333 -> 471 MB. So
    ``auto`` gives fp32/fp16 one executor (its 300 MB budget), int8/int4 two.
    """
    if executors is Executors.ONE:
        return None, "--executors one"
    if not device.upper().startswith("CPU"):
        return None, f"not on CPU ({device})"
    if executors is Executors.AUTO and precision not in ("int8", "int4"):
        return None, f"--executors auto: {precision} weights keep one executor (memory)"
    if str(given.get("NUM_STREAMS", "1")) != "1" or "PERFORMANCE_HINT" in given:
        return None, "graph.pbtxt sets NUM_STREAMS or PERFORMANCE_HINT"
    threads = [k for k in ("INFERENCE_NUM_THREADS", "CPU_THREADS_NUM", "AFFINITY", "ENABLE_HYPER_THREADING")
               if k in given]
    if threads:
        return None, f"graph.pbtxt sets {threads[0]}"
    out = {k: v for k, v in config.items() if k not in ("NUM_STREAMS", "PERFORMANCE_HINT")}
    out["PERFORMANCE_HINT"] = "THROUGHPUT"
    return out, f"--executors {executors.value}"


def compile_executors(core: ov.Core, xml: Path, weights: PrivateWeights, build: Callable[[ov.Model], ov.Model],
                      graph: GraphOptions | RerankGraphOptions, record: dict[str, Any], cfg: ServeConfig,
                      device: str, head: dict[str, object], *, bulk: bool = True,
                      lone_widths: tuple[int, ...] = (),
                      ) -> tuple[ov.CompiledModel, ov.CompiledModel | None, str, list[Path], LoneShapes]:
    """:func:`compile_private`, plus the multi-stream executor of :func:`bulk_config` when
    ``bulk`` and it applies (else None), plus copies compiled for input shape ``[1, width]`` for
    ``lone_widths`` while they fit in ``--lone_shapes_max_mb`` (:func:`_lone_shapes`,
    :meth:`OpenVINOEngine.set_lone_shapes`): (latency executor, bulk executor, precision, mapped,
    lone copies by width)."""
    model = build(core.read_model(xml, weights.path))  # weights mapped, not read yet
    precision = detect_precision(record, model)
    config = plugin_config(graph, cfg, device, precision)
    second, why = bulk_plan(config, graph.plugin_config, device, precision, cfg.executors) if bulk else (None, "")
    if bulk and second is None and cfg.executors is Executors.TWO:
        log.warning("%s: --executors two, but one executor: %s", xml.parent.name, why)
    if cfg.cache_dir is None:
        compiled = core.compile_model(model, device, config)
        extra = core.compile_model(model, device, second) if second is not None else None
        source: ov.Model | None = model
        mapped = [weights.path]
    else:  # compile the headed model's file: hashed by path, weights mapped once (weights.py)
        content = hashlib.sha256(xml.read_bytes()).hexdigest() + weights.sha256
        headed = pooled_ir(model, content, cfg.cache_dir, head)
        del model
        compiled = core.compile_model(str(headed), device, config)
        extra = core.compile_model(str(headed), device, second) if second is not None else None
        source = core.read_model(str(headed)) if lone_widths else None
        mapped = [weights.path, headed.with_suffix(".bin")]
    lone = _lone_shapes(core, source, lone_widths, device, config, xml.parent.name,
                        budget=cfg.lone_shapes_max_mb * 2**20, estimate=weights.size)
    return compiled, _multi_stream(extra, cfg), precision, mapped, lone


def _lone_shapes(core: ov.Core, model: ov.Model | None, widths: tuple[int, ...], device: str,
                 config: dict[str, str], label: str = "model", *, budget: int, estimate: int) -> LoneShapes:
    """``model`` compiled for one row of each width in turn (every input is ``[batch, sequence]``),
    while the copies fit in ``budget`` bytes. Each copy holds its own repacked weights: one is
    expected to take ``estimate`` (the weights file's size) or what the last one took when more
    (resident memory growth, which misses memory freed earlier and reused); a model whose first
    copy would not fit gets none."""
    import openvino as ov

    out: LoneShapes = {}
    used, expected = 0, estimate
    for width in widths:
        if model is None or used + expected > budget:
            break
        before = _resident_bytes()
        try:
            fixed = model.clone()
            fixed.reshape({port: ov.PartialShape([1, width]) for port in fixed.inputs})
            out[width] = core.compile_model(fixed, device, config)
        except RuntimeError as exc:  # a graph that cannot take a static shape: serve it without copies
            log.warning("%s: no static-shape copy for %d tokens: %s", label, width, openvino_reason(exc))
            break
        expected = max(_resident_bytes() - before, estimate)
        used += expected
    if out:
        log.info("%s: static-shape copies for lone queries of up to %s tokens compiled (%.0f MB of "
                 "--lone_shapes_max_mb %.0f); kept if faster", label, ", ".join(map(str, sorted(out))),
                 used / 2**20, budget / 2**20)
    return out


def _resident_bytes() -> int:
    """This process's resident memory (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _multi_stream(compiled: ov.CompiledModel | None, cfg: ServeConfig) -> ov.CompiledModel | None:
    """``compiled`` if it got more than one stream (a one-core machine gets one: no use)."""
    if compiled is None or int(compiled.get_property("NUM_STREAMS")) > 1:
        return compiled
    if cfg.executors is Executors.TWO:
        log.warning("--executors two, but one executor: THROUGHPUT gives this machine a single stream")
    return None


def _tokenizer(base_path: Path, model_dir: Path, record: dict[str, Any]) -> tuple[ServingTokenizer, int]:
    max_length = resolve_max_length(model_dir, record)
    hf_config = read_json_object(model_dir / "config.json")
    vocab = hf_config.get("vocab_size")
    tok_dir = model_dir if (model_dir / "tokenizer.json").is_file() else base_path
    tokenizer = ServingTokenizer.from_dir(tok_dir, max_length=max_length,
                                          vocab_size=vocab if isinstance(vocab, int) else None)
    return tokenizer, max_length


def _warm_up(name: str, compiled: ov.CompiledModel, bulk: ov.CompiledModel | None, tokenizer: ServingTokenizer,
             max_length: int, lone: LoneShapes) -> OpenVINOEngine:
    engine = OpenVINOEngine(compiled, bulk=bulk)
    engine.set_lone_shapes(lone)
    for batch, length in ((1, 8), (4, min(128, max_length))):  # first runs pay shape setup
        ids = np.full((batch, length), tokenizer.pad_id + 1, dtype=np.int64)
        out = engine.infer(ids, np.ones_like(ids))
        if bulk is not None:
            engine.infer(ids, np.ones_like(ids), bulk=True)
    engine.dimensions = int(out.shape[1])
    _time_inline(name, engine, tokenizer)
    return engine


def _time_inline(name: str, engine: OpenVINOEngine, tokenizer: ServingTokenizer) -> None:
    """How lone queries run (``engine.pad_lone``; static-shape copies kept or dropped), then the
    inline time's first samples."""
    policy = BatchPolicy()
    engine.pad_id = tokenizer.pad_id
    timed: dict[str, float] = {}
    if tokenizer.max_length >= policy.width(max(LONE_LENGTHS)):
        timed = engine.time_lone(tokenizer.pad_id + 1, tokenizer.pad_id, policy.pad_multiple)
    # not timed: padded, like batches, and no static copies (their memory is kept only when it pays)
    engine.pad_lone = not timed or timed["padded"] <= timed["exact"]
    widths = engine.lone_widths
    if not (timed and "static" in timed and timed["static"] < LONE_STATIC_GAIN * min(timed["exact"], timed["padded"])):
        engine.set_lone_shapes({})
    if timed:
        way = ("static shapes " + ", ".join(map(str, widths)) if engine.lone_widths else
               "padded" if engine.pad_lone else "not padded")
        static = (f", {1000 * timed['static']:.2f} ms on static shapes of {', '.join(map(str, widths))} tokens"
                  if "static" in timed else "")
        log.info("%s: lone queries of %d-%d tokens: p50 %.2f ms at their length, %.2f ms padded to a multiple "
                 "of %d%s: %s", name, min(LONE_LENGTHS), max(LONE_LENGTHS), 1000 * timed["exact"],
                 1000 * timed["padded"], policy.pad_multiple, static, way)
    elif tokenizer.max_length < policy.width(max(LONE_LENGTHS)):
        log.info("%s: lone queries padded (max_length %d is below the timed lengths)", name, tokenizer.max_length)
    else:
        log.info("%s: lone queries padded (too slow to time within %.1f s)", name, LONE_BUDGET_S)
    ids = np.full((1, 16), tokenizer.pad_id + 1, dtype=np.int64)
    engine.time_inline(ids, np.ones_like(ids))


def openvino_reason(exc: BaseException) -> str:
    """The line of an OpenVINO error that says what happened.

    OpenVINO messages are a stack of ``Exception from <file>:<line>:`` and ``Check '...'
    failed at <file>:<line>:`` lines above the actual reason (``Incorrect weights in bin
    file!``); keeping only the first line leaves nothing useful.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines
              if not line.startswith("Exception from ") and not _CHECK_FAILED.fullmatch(line)]
    text = useful[-1] if useful else (lines[-1] if lines else "no details")
    return text if len(text) <= 300 else text[:297] + "..."


def property_text(compiled: ov.CompiledModel, key: str) -> str | None:
    try:
        value = compiled.get_property(key)
    except RuntimeError:
        return None
    name = getattr(value, "get_type_name", None)
    return str(name()) if callable(name) else str(value)
