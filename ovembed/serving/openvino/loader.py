"""Load one model folder: graph.pbtxt, the IR with its task head, the tokenizer; compile the
executors, warm them up. Blocking: call it in a worker thread."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import Executors, ServeConfig
from ovembed.errors import ConfigError
from ovembed.graphs import GRAPH_FILENAME, GraphOptions, RerankGraphOptions, read_graph
from ovembed.hf_files import declared_max_length, read_json_object
from ovembed.prompts import prompts_from_record
from ovembed.repository import read_record
from ovembed.serving.api import ModelInfo
from ovembed.serving.batching.policy import BatchPolicy
from ovembed.serving.openvino.devices import check_device, device_info, device_summary, primary_device
from ovembed.serving.openvino.errors import loading_errors
from ovembed.serving.openvino.executor import OpenVINOEngine
from ovembed.serving.openvino.lone import (
    LONE_BUDGET_S,
    LONE_LENGTHS,
    LONE_STATIC_GAIN,
    LONE_WIDTHS,
    LoneShapes,
    _lone_shapes,
)
from ovembed.serving.openvino.plan import (
    _multi_stream,
    bulk_plan,
    detect_precision,
    inference_precision,
    plugin_config,
    property_text,
)
from ovembed.serving.openvino.weights import (
    PrivateWeights,
    pooled_ir,
    private_weights,
    release_file_pages,
    trim_heap,
)
from ovembed.serving.tasks.pair_chunker import PairChunker
from ovembed.serving.tasks.pooling import resolve_pooling
from ovembed.serving.tasks.tokenizer import ServingTokenizer

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger("ovembed.serving")


MODEL_FILENAME = "openvino_model.xml"


def resolve_max_length(model_dir: Path, record: dict[str, Any]) -> int:
    """ovembed_model.json ``max_length``; else what the HF files declare; else 512."""
    value = record.get("max_length")
    if isinstance(value, int) and value > 0:
        return value
    declared = declared_max_length(model_dir)
    return declared[0] if declared else 512


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


def _pooled_model(model: ov.Model, graph: GraphOptions) -> ov.Model:
    from ovembed.heads.embeddings import add_pooling

    outputs = model.outputs
    if len(outputs) == 1 and outputs[0].get_partial_shape().rank.get_length() == 2:
        if graph.normalize_embeddings:  # already pooled: only normalise
            import openvino as ov
            import openvino.opset13 as ops

            axes = ops.constant(np.array([1], dtype=np.int64))
            norm = ops.normalize_l2(outputs[0], axes, 1e-12, "max")
            model = ov.Model([ops.result(norm)], model.get_parameters(), model.get_friendly_name())
        return model
    return add_pooling(model, graph.pooling, graph.normalize_embeddings)


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
    device = cfg.target_device or graph.target_device
    check_device(core, device)

    # Weights come from a private copy (weights.py): files in the repository may change at
    # any time without reaching the mapping this version serves from.
    with loading_errors(name, xml):
        created = int(xml.stat().st_mtime)
        with private_weights(xml.with_suffix(".bin"), cfg.cache_dir) as weights:
            tokenizer, max_length = _tokenizer(base_path, model_dir, record)
            head = {"pooling": str(graph.pooling), "normalize": graph.normalize_embeddings}
            compiled, bulk, precision, mapped, lone = compile_executors(
                core, xml, weights, lambda model: _pooled_model(model, graph), graph, record, cfg, device, head,
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
        prompts=prompts_from_record(record).with_default(cfg.default_prompt_name),
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
