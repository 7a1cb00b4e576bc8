"""Load one model folder: graph.pbtxt, the IR with its task head, the tokenizer; compile the
executors, warm them up. Blocking: call it in a worker thread."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import Executors, ServeConfig
from ovembed.errors import ConfigError
from ovembed.graphs import AnyGraphOptions
from ovembed.hf_files import read_json_object
from ovembed.layout import GRAPH_FILENAME, HF_CONFIG, MODEL_XML, TOKENIZER_JSON
from ovembed.repository import read_record
from ovembed.serving.batching.policy import PAD_MULTIPLE, padded_width
from ovembed.serving.openvino.devices import check_device, device_info, device_summary, primary_device
from ovembed.serving.openvino.errors import loading_errors
from ovembed.serving.openvino.executor import OpenVINOExecutor
from ovembed.serving.openvino.lone import (
    LONE_BUDGET_S,
    LONE_LENGTHS,
    LONE_STATIC_GAIN,
    LONE_WIDTHS,
    LoneShapes,
    compile_static_copies,
)
from ovembed.serving.openvino.plan import (
    _multi_stream,
    detect_precision,
    inference_precision,
    plugin_config,
    property_text,
    throughput_plan,
)
from ovembed.serving.openvino.weights import (
    PrivateWeights,
    pooled_ir,
    private_weights,
    release_file_pages,
    trim_heap,
)
from ovembed.serving.tasks.spec import LoadedModel, Source
from ovembed.serving.tasks.table import read_task_graph
from ovembed.serving.tasks.tokenizer import ServingTokenizer

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger("ovembed.serving")


def load_model(core: ov.Core, name: str, base_path: Path, cfg: ServeConfig,
               graph_file: str = GRAPH_FILENAME) -> LoadedModel:
    """Read, compile and warm up the model in ``base_path`` (the folder with ``graph_file``), whatever its
    task: the graph's calculator chooses the :class:`~ovembed.serving.tasks.spec.TaskSpec`."""
    started = time.perf_counter()
    base_path = Path(base_path)
    spec, graph = read_task_graph(base_path, graph_file)
    model_dir = graph.model_dir(base_path)
    xml = model_dir / MODEL_XML
    if not xml.is_file():
        raise ConfigError(f"{xml} not found")
    record = read_record(base_path) or read_record(model_dir)
    tok_dir = model_dir if (model_dir / TOKENIZER_JSON).is_file() else base_path
    source = Source(name, base_path, model_dir, record, read_json_object(model_dir / HF_CONFIG), tok_dir, graph, cfg)
    prepared = spec.prepare(source)
    graph = prepared.graph
    device = cfg.target_device or graph.target_device
    check_device(core, device)
    vocab = source.hf_config.get("vocab_size")
    tokenizer = ServingTokenizer.from_dir(tok_dir, max_length=prepared.max_length,
                                          vocab_size=vocab if isinstance(vocab, int) else None)

    # Weights come from a private copy (weights.py): files in the repository may change at
    # any time without reaching the mapping this version serves from.
    with loading_errors(name, xml):
        created = int(xml.stat().st_mtime)
        with private_weights(xml.with_suffix(".bin"), cfg.cache_dir) as weights:
            widths = tuple(w for w in LONE_WIDTHS if w <= prepared.max_length) if spec.throughput_executor else ()
            latency, throughput, precision, mapped, lone = compile_executors(
                core, xml, weights, prepared.head, graph, record, cfg, device, prepared.head_key,
                throughput=spec.throughput_executor, lone_widths=widths)
            release_file_pages(*mapped)  # compiling read every weight; most now live repacked
            engine = _warm_up(name, latency, throughput, tokenizer, prepared.warm_shapes, lone)
            if lone and not engine.lone_widths:  # compiled, timed and dropped: free their memory now
                lone.clear()
                trim_heap()
            released = release_file_pages(*mapped)

    info = spec.info(source, prepared, dimensions=engine.dimensions, device=device, precision=precision,
                     created=created)
    dev = device_info(core, primary_device(core, device))
    exec_precision = property_text(latency, "INFERENCE_PRECISION_HINT")
    streams = property_text(latency, "NUM_STREAMS")
    _, why = inference_precision(graph, cfg, device, precision)
    log.info("model %s computes in %s (%s)", name, exec_precision or "the device's default", why)
    if throughput is not None:
        streams = f"{streams} (small batches) + {property_text(throughput, 'NUM_STREAMS')} (large batches)"
    log.info("%smodel %s ready on %s (%s): weights %s, inference precision %s, %s stream(s), "
             "%d infer request(s), %s, loaded in %.2f s; %.0f MB of mapped weights released", spec.label, name,
             device, dev.full_name, precision, exec_precision or "default", streams, engine.slots,
             spec.ready_details(info, prepared, cfg), time.perf_counter() - started, released / 2**20)
    log.info("model %s device %s", name, device_summary(dev, precision, exec_precision))
    return LoadedModel(info, engine, tokenizer, spec, prepared.warning, prepared.extras)


def compile_executors(core: ov.Core, xml: Path, weights: PrivateWeights, build: Callable[[ov.Model], ov.Model],
                      graph: AnyGraphOptions, record: dict[str, Any], cfg: ServeConfig,
                      device: str, head: dict[str, object], *, throughput: bool = True,
                      lone_widths: tuple[int, ...] = (),
                      ) -> tuple[ov.CompiledModel, ov.CompiledModel | None, str, list[Path], LoneShapes]:
    """Read ``xml`` with the private copy ``weights``, append the head (``build``; ``head`` describes it
    and keys the cached headed IR with ``--cache_dir``) and compile the latency executor, plus the
    throughput executor of :func:`~ovembed.serving.openvino.plan.throughput_plan` when ``throughput``
    and it applies (else None), plus static-shape copies for input shape ``[1, width]`` for
    ``lone_widths`` while they fit in ``--lone_shapes_max_mb`` (:func:`~.lone.compile_static_copies`):
    (latency executor, throughput executor, weight precision, the weight files it maps, copies by width)."""
    model = build(core.read_model(xml, weights.path))  # weights mapped, not read yet
    precision = detect_precision(record, model)
    config = plugin_config(graph, cfg, device, precision)
    plan, why = (throughput_plan(config, graph.plugin_config, device, precision, cfg.executors) if throughput
                 else (None, ""))
    if throughput and plan is None and cfg.executors is Executors.TWO:
        log.warning("%s: --executors two, but one executor: %s", xml.parent.name, why)
    if cfg.cache_dir is None:
        latency = core.compile_model(model, device, config)
        second = core.compile_model(model, device, plan) if plan is not None else None
        source: ov.Model | None = model
        mapped = [weights.path]
    else:  # compile the headed model's file: hashed by path, weights mapped once (weights.py)
        content = hashlib.sha256(xml.read_bytes()).hexdigest() + weights.sha256
        headed = pooled_ir(model, content, cfg.cache_dir, head)
        del model
        latency = core.compile_model(str(headed), device, config)
        second = core.compile_model(str(headed), device, plan) if plan is not None else None
        source = core.read_model(str(headed)) if lone_widths else None
        mapped = [weights.path, headed.with_suffix(".bin")]
    lone = compile_static_copies(core, source, lone_widths, device, config, xml.parent.name,
                        budget=cfg.lone_shapes_max_mb * 2**20, estimate=weights.size)
    return latency, _multi_stream(second, cfg), precision, mapped, lone


def _warm_up(name: str, latency: ov.CompiledModel, throughput: ov.CompiledModel | None, tokenizer: ServingTokenizer,
             shapes: tuple[tuple[int, int], ...], lone: LoneShapes) -> OpenVINOExecutor:
    engine = OpenVINOExecutor(latency, throughput=throughput)
    engine.set_lone_shapes(lone)
    for batch, length in shapes:  # first runs pay shape setup
        ids = np.full((batch, length), tokenizer.pad_id + 1, dtype=np.int64)
        out = engine.infer(ids, np.ones_like(ids))
        if throughput is not None:
            engine.infer(ids, np.ones_like(ids), throughput=True)
    engine.dimensions = int(out.shape[-1])
    engine.per_token = out.ndim == 3  # one vector per token (tasks.token_embed)
    _time_inline(name, engine, tokenizer)
    return engine


def _time_inline(name: str, engine: OpenVINOExecutor, tokenizer: ServingTokenizer) -> None:
    """How lone queries run (``engine.pad_lone``; static-shape copies kept or dropped), then the
    inline time's first samples."""
    engine.pad_id = tokenizer.pad_id
    timed: dict[str, float] = {}
    if tokenizer.max_length >= padded_width(max(LONE_LENGTHS)):
        timed = engine.time_lone(tokenizer.pad_id + 1, tokenizer.pad_id, PAD_MULTIPLE)
    # not timed: padded, like batches, and no static copies (their memory is kept only when it pays)
    engine.pad_lone = not timed or timed["padded"] <= timed["exact"]
    widths = engine.lone_widths
    if not (timed and "static" in timed and timed["static"] < LONE_STATIC_GAIN * min(timed["exact"], timed["padded"])):
        engine.set_lone_shapes({})
    if timed:
        way = ("static-shape copies kept: lone queries run on them" if engine.lone_widths else
               ("static-shape copies dropped (not faster); " if widths else "") +
               ("lone queries padded" if engine.pad_lone else "lone queries not padded"))
        static = (f", {1000 * timed['static']:.2f} ms on static shapes of {', '.join(map(str, widths))} tokens"
                  if "static" in timed else "")
        log.info("%s: lone queries of %d-%d tokens: p50 %.2f ms at their length, %.2f ms padded to a multiple "
                 "of %d%s: %s", name, min(LONE_LENGTHS), max(LONE_LENGTHS), 1000 * timed["exact"],
                 1000 * timed["padded"], PAD_MULTIPLE, static, way)
    elif tokenizer.max_length < padded_width(max(LONE_LENGTHS)):
        log.info("%s: lone queries padded (max_length %d is below the timed lengths)", name, tokenizer.max_length)
    else:
        log.info("%s: lone queries padded (too slow to time within %.1f s)", name, LONE_BUDGET_S)
    ids = np.full((1, 16), tokenizer.pad_id + 1, dtype=np.int64)
    engine.time_inline(ids, np.ones_like(ids))
