"""The executor plan: the plugin config each executor compiles with (hint, precision, cache), and
whether a model gets a throughput executor beside its latency executor."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import Executors, ServeConfig
from ovembed.graphs import AnyGraphOptions

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger("ovembed.serving")


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


def inference_precision(graph: AnyGraphOptions, cfg: ServeConfig, device: str,
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


def plugin_config(graph: AnyGraphOptions, cfg: ServeConfig, device: str,
                  precision: str) -> dict[str, str]:
    """graph.pbtxt's plugin_config, as strings, plus defaults:

    - ``PERFORMANCE_HINT LATENCY`` on CPU when neither a hint nor NUM_STREAMS is given: the
      batcher already supplies the parallelism (one batch uses every core), and it halves the
      latency of single short requests compared with THROUGHPUT.
    - ``INFERENCE_PRECISION_HINT`` from :func:`inference_precision`.
    - ``CACHE_DIR`` from ``--cache_dir`` (compiled blobs cached: fast restarts), with
      ``CACHE_MODE OPTIMIZE_SIZE`` on CPU: the blob holds no weights, which are mapped from
      the compiled IR's own .bin, once (see :mod:`ovembed.serving.openvino.weights`).
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


def throughput_plan(config: dict[str, str], given: dict[str, Any], device: str, precision: str,
              executors: Executors = Executors.AUTO) -> tuple[dict[str, str] | None, str]:
    """(plugin config of the throughput executor or None, why). There is one only on
    CPU, when graph.pbtxt keeps the exported default (``given``, its plugin_config:
    ``NUM_STREAMS 1`` or nothing, no hint, no thread setting: explicit settings there win), and
    ``executors`` (``--executors``) is ``two``, or ``auto`` with int8/int4 weights.

    Measured on 2 cores (MiniLM, Sapphire Rapids): two single-thread streams embed batches of
    256-token passages faster than one two-thread stream (int8 and fp32 alike), while a single
    short query is fastest on one stream with every core. The throughput executor repacks the
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


def _multi_stream(compiled: ov.CompiledModel | None, cfg: ServeConfig) -> ov.CompiledModel | None:
    """``compiled`` if it got more than one stream (a one-core machine gets one: no use)."""
    if compiled is None or int(compiled.get_property("NUM_STREAMS")) > 1:
        return compiled
    if cfg.executors is Executors.TWO:
        log.warning("--executors two, but one executor: THROUGHPUT gives this machine a single stream")
    return None


def property_text(compiled: ov.CompiledModel, key: str) -> str | None:
    try:
        value = compiled.get_property(key)
    except RuntimeError:
        return None
    name = getattr(value, "get_type_name", None)
    return str(name()) if callable(name) else str(value)
