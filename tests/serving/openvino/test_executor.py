"""Loading a model folder: max_length, precision, plugin_config defaults, devices."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ovembed.config import Executors, ServeConfig
from ovembed.errors import ConfigError
from ovembed.graphs import GraphOptions
from ovembed.serving.openvino import devices
from ovembed.serving.openvino.executor import OpenVINOExecutor
from ovembed.serving.openvino.loader import load_model
from ovembed.serving.openvino.plan import detect_precision, plugin_config, throughput_plan
from ovembed.serving.tasks.spec import resolve_max_length


def write(folder: Path, name: str, data: dict[str, object]) -> None:
    (folder / name).write_text(json.dumps(data), encoding="utf-8")


def test_max_length_sources_in_order(tmp_path: Path) -> None:
    write(tmp_path, "config.json", {"model_type": "bert", "max_position_embeddings": 512})
    assert resolve_max_length(tmp_path, {}) == 512
    write(tmp_path, "tokenizer_config.json", {"model_max_length": 384})
    assert resolve_max_length(tmp_path, {}) == 384
    write(tmp_path, "tokenizer_config.json", {"model_max_length": 1e30})  # HF's "unset"
    assert resolve_max_length(tmp_path, {}) == 512
    write(tmp_path, "sentence_bert_config.json", {"max_seq_length": 256})
    assert resolve_max_length(tmp_path, {}) == 256
    assert resolve_max_length(tmp_path, {"max_length": 128}) == 128


@pytest.mark.parametrize("model_type", ["roberta", "xlm-roberta", "mpnet", "camembert"])
def test_max_length_offset_positions(tmp_path: Path, model_type: str) -> None:
    write(tmp_path, "config.json", {"model_type": model_type, "max_position_embeddings": 514})
    assert resolve_max_length(tmp_path, {}) == 512


def test_max_length_fallback(tmp_path: Path) -> None:
    assert resolve_max_length(tmp_path, {}) == 512


def test_plugin_config_defaults_and_overrides() -> None:
    cfg = ServeConfig(cache_dir=Path("/tmp/ovcache"))
    graph = GraphOptions(plugin_config={"NUM_STREAMS": 2, "ENABLE_CPU_PINNING": True})
    out = plugin_config(graph, cfg, "CPU", "fp32")
    assert out == {"NUM_STREAMS": "2", "ENABLE_CPU_PINNING": "YES",
                   "INFERENCE_PRECISION_HINT": "f32", "CACHE_DIR": "/tmp/ovcache",
                   "CACHE_MODE": "OPTIMIZE_SIZE"}
    out = plugin_config(GraphOptions(), ServeConfig(), "CPU", "int8")
    assert out == {"PERFORMANCE_HINT": "LATENCY"}
    graph = GraphOptions(plugin_config={"INFERENCE_PRECISION_HINT": "bf16",
                                        "PERFORMANCE_HINT": "THROUGHPUT"})
    assert plugin_config(graph, ServeConfig(), "CPU", "fp32") == {
        "INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "THROUGHPUT"}
    assert plugin_config(GraphOptions(), ServeConfig(), "GPU", "fp32") == {}


def test_bulk_executor_only_for_int_weights_on_cpu_with_default_streams() -> None:
    config = {"NUM_STREAMS": "1", "CACHE_DIR": "/c"}
    assert throughput_plan(config, {"NUM_STREAMS": 1}, "CPU", "int8")[0] == {
        "CACHE_DIR": "/c", "PERFORMANCE_HINT": "THROUGHPUT"}
    assert throughput_plan({"PERFORMANCE_HINT": "LATENCY"}, {}, "CPU", "int4")[0] == {"PERFORMANCE_HINT": "THROUGHPUT"}
    assert throughput_plan(config, {"NUM_STREAMS": 1}, "CPU", "fp32")[0] is None
    assert throughput_plan(config, {"NUM_STREAMS": 1}, "GPU", "int8")[0] is None
    assert throughput_plan({"NUM_STREAMS": "2"}, {"NUM_STREAMS": 2}, "CPU", "int8")[0] is None
    assert throughput_plan(config, {"PERFORMANCE_HINT": "LATENCY"}, "CPU", "int8")[0] is None
    assert throughput_plan(config, {"INFERENCE_NUM_THREADS": 1}, "CPU", "int8")[0] is None


def test_executors_choice_overrides_the_weight_rule_not_the_graph() -> None:
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    two = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"}
    assert throughput_plan(config, {}, "CPU", "fp32", Executors.TWO) == (two, "--executors two")
    assert throughput_plan(config, {}, "CPU", "fp16", Executors.TWO)[0] == two
    assert throughput_plan(config, {}, "CPU", "int8", Executors.ONE) == (None, "--executors one")
    assert throughput_plan(config, {}, "CPU", "fp32", Executors.AUTO) == (
        None, "--executors auto: fp32 weights keep one executor (memory)")
    # explicit streams, hints, threads in graph.pbtxt and other devices still keep one
    assert throughput_plan(config, {"NUM_STREAMS": 2}, "CPU", "fp32", Executors.TWO) == (
        None, "graph.pbtxt sets NUM_STREAMS or PERFORMANCE_HINT")
    assert throughput_plan(config, {"INFERENCE_NUM_THREADS": 1}, "CPU", "int8", Executors.TWO) == (
        None, "graph.pbtxt sets INFERENCE_NUM_THREADS")
    assert throughput_plan({}, {}, "GPU", "int8", Executors.TWO) == (None, "not on CPU (GPU)")


def test_executors_flag_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from ovembed.cli import add_config_arguments, build_config

    def parse(*argv: str) -> ServeConfig:
        parser = argparse.ArgumentParser()
        add_config_arguments(parser, ServeConfig)
        cfg: ServeConfig = build_config(ServeConfig, parser.parse_args(["--config_path", "c.json", *argv]))
        return cfg

    assert parse().executors is Executors.AUTO
    assert parse("--executors", "one").executors is Executors.ONE
    monkeypatch.setenv("OVEMBED_EXECUTORS", "TWO")
    assert parse().executors is Executors.TWO
    with pytest.raises(ConfigError, match="--executors must be one of auto, one, two, got 'three'"):
        ServeConfig(executors="three")  # type: ignore[arg-type]


def test_devices_on_this_machine() -> None:
    import openvino as ov

    core = ov.Core()
    assert "CPU" in devices.available_devices(core)
    info = devices.device_info(core, "CPU")
    assert info.full_name and "FP32" in info.capabilities
    advice = devices.suggest(info)
    assert advice.weight_format == "int8" and advice.reason
    devices.check_device(core, "CPU")
    devices.check_device(core, "AUTO")
    devices.check_device(core, "HETERO:CPU")
    available = ", ".join(core.available_devices)
    if "GPU" not in available:
        with pytest.raises(ConfigError) as err:
            devices.check_device(core, "GPU")
        assert str(err.value) == (
            f"device GPU is not available on this machine (available: {available})")
        with pytest.raises(ConfigError, match="device GPU is not available"):
            devices.check_device(core, "AUTO:GPU,CPU")


def test_suggestions_depend_on_int8_hardware() -> None:
    plain = devices.DeviceInfo("CPU", "old cpu", ("FP32", "INT8"), frozenset({"avx2"}))
    vnni = devices.DeviceInfo("CPU", "new cpu", ("FP32", "INT8"), frozenset({"avx512_vnni"}))
    assert not plain.int8_accelerated and vnni.int8_accelerated
    assert "weight-only" in devices.suggest(plain).reason
    assert "2-4x faster" in devices.suggest(vnni).reason
    gpu = devices.DeviceInfo("GPU.0", "gpu", ("FP16", "INT8"))
    assert devices.suggest(gpu).weight_format == "fp16"


@pytest.fixture(scope="module")
def minilm_dir(minilm_repo: Path) -> Path:
    return minilm_repo.parent / "minilm"


def test_precision_from_record_or_weights(minilm_dir: Path) -> None:
    import openvino as ov

    model = ov.Core().read_model(minilm_dir / "openvino_model.xml")
    assert detect_precision({"weight_format": "int8"}, model) == "int8"
    assert detect_precision({}, model) == "fp32"


def test_load_minilm(minilm_dir: Path) -> None:
    import openvino as ov

    loaded = load_model(ov.Core(), "minilm", minilm_dir, ServeConfig())
    info = loaded.info
    assert (info.name, info.dimensions, info.max_length) == ("minilm", 384, 256)
    assert (info.device, info.precision, info.pooling.value, info.normalize) == (
        "CPU", "fp32", "MEAN", True)
    assert loaded.engine.slots >= 1
    assert loaded.engine.latency.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    loaded.engine.close()


def test_executors_two_gives_fp32_a_multi_stream_executor_with_equal_results(minilm_dir: Path) -> None:
    import numpy as np
    import openvino as ov

    core = ov.Core()
    auto = load_model(core, "minilm", minilm_dir, ServeConfig())
    assert auto.engine.throughput is None  # fp32: one executor unless asked
    auto.engine.close()
    two = load_model(core, "minilm", minilm_dir, ServeConfig(executors=Executors.TWO))
    engine = two.engine
    assert engine.throughput is not None and engine.slots == int(engine.throughput.get_property("NUM_STREAMS")) > 1
    assert engine.throughput.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32  # the same precision
    ids = np.random.default_rng(1).integers(1000, 2000, size=(4, 32))
    np.testing.assert_allclose(engine.infer(ids, np.ones_like(ids), throughput=True),
                               engine.infer(ids, np.ones_like(ids)), atol=1e-5)
    engine.close()


def test_gpu_request_fails_naming_available_devices(minilm_dir: Path) -> None:
    import openvino as ov

    core = ov.Core()
    if any(d.startswith("GPU") for d in core.available_devices):
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError) as err:
        load_model(core, "minilm", minilm_dir, ServeConfig(target_device="GPU"))
    assert "device GPU is not available on this machine (available: CPU" in str(err.value)


def test_ovms_style_folder_without_record(minilm_dir: Path, tmp_path: Path) -> None:
    import openvino as ov

    folder = tmp_path / "ovms"
    shutil.copytree(minilm_dir, folder)
    (folder / "ovembed_model.json").unlink(missing_ok=True)
    write(folder, "sentence_bert_config.json", {"max_seq_length": 200})
    loaded = load_model(ov.Core(), "ovms", folder, ServeConfig())
    assert loaded.info.max_length == 200 and loaded.info.precision == "fp32"
    loaded.engine.close()


def test_missing_files_are_config_errors(tmp_path: Path, minilm_dir: Path) -> None:
    import openvino as ov

    core = ov.Core()
    with pytest.raises(ConfigError, match="does not exist"):
        load_model(core, "x", tmp_path / "nope", ServeConfig())
    shutil.copy(minilm_dir / "graph.pbtxt", tmp_path / "graph.pbtxt")
    with pytest.raises(ConfigError, match=r"openvino_model\.xml not found"):
        load_model(core, "x", tmp_path, ServeConfig())


def test_small_and_large_batches_pick_executors_with_equal_results(minilm_dir: Path) -> None:
    """A lone small batch runs on the one-stream executor (slots drop to 1 meanwhile), larger
    ones on the multi-stream one; both give the vectors a synchronous inference gives."""
    import threading

    import numpy as np
    import openvino as ov

    from ovembed.graphs import read_graph
    from ovembed.heads.embeddings import add_pooling

    core = ov.Core()
    graph = read_graph(minilm_dir)

    def compiled(hint: str) -> ov.CompiledModel:
        model = add_pooling(core.read_model(minilm_dir / "openvino_model.xml"), graph.pooling,
                            graph.normalize_embeddings)
        return core.compile_model(model, "CPU", {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32",
                                                 "NUM_STREAMS": "1" if hint == "LATENCY" else "2"})

    engine = OpenVINOExecutor(compiled("LATENCY"), throughput=compiled("THROUGHPUT"), latency_tokens=16, inline=False)
    assert engine.slots == 2
    rng = np.random.default_rng(0)
    small = rng.integers(1000, 2000, size=(1, 8))
    large = rng.integers(1000, 2000, size=(4, 32))
    results: dict[str, np.ndarray] = {}
    for name, ids in (("small", small), ("large", large)):
        done = threading.Event()

        def on_done(out: np.ndarray | BaseException, name: str = name, done: threading.Event = done) -> None:
            assert not isinstance(out, BaseException)
            results[name] = np.array(out)
            done.set()

        engine.start(ids, np.ones_like(ids), on_done)
        assert done.wait(60)
        assert engine.batches == ({"latency": 1, "throughput": 0} if name == "small"
                                  else {"latency": 1, "throughput": 1})
    engine.close()
    assert engine.slots == 2
    for name, ids in (("small", small), ("large", large)):
        expected = engine.infer(ids, np.ones_like(ids))
        np.testing.assert_allclose(results[name], expected, atol=1e-5)
        np.testing.assert_allclose(results[name], engine.infer(ids, np.ones_like(ids), throughput=True), atol=1e-5)


def _compiled_minilm(minilm_dir: Path, config: dict[str, str]) -> Any:
    import openvino as ov

    from ovembed.graphs import read_graph
    from ovembed.heads.embeddings import add_pooling

    core = ov.Core()
    graph = read_graph(minilm_dir)
    model = add_pooling(core.read_model(minilm_dir / "openvino_model.xml"), graph.pooling, graph.normalize_embeddings)
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", **config})


def _start(engine: OpenVINOExecutor, ids: Any) -> tuple[Any, bool]:
    """engine.start; (the result, whether on_done had run before start returned)."""
    import threading

    import numpy as np

    results: list[Any] = []
    done = threading.Event()

    def on_done(out: Any) -> None:
        results.append(np.array(out) if not isinstance(out, BaseException) else out)
        done.set()

    engine.start(ids, np.ones_like(ids), on_done)
    returned_done = done.is_set()
    assert done.wait(60)
    return results[0], returned_done


def test_a_lone_short_batch_runs_inline_with_the_same_vectors(minilm_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone batch of at most INLINE_TOKENS padded tokens runs on the caller's thread (on_done has
    run when start returns); a larger one goes through the AsyncInferQueue; both equal infer()."""
    import numpy as np

    from ovembed.serving.openvino import executor as engine_module
    from ovembed.serving.openvino.executor import INLINE_TOKENS

    monkeypatch.setattr(engine_module, "INLINE_MAX_S", 10.0)  # a busy CI machine: inline whatever it measures
    engine = OpenVINOExecutor(_compiled_minilm(minilm_dir, {"NUM_STREAMS": "1"}))
    rng = np.random.default_rng(1)
    warm = rng.integers(1000, 2000, size=(1, 16))
    assert engine.warm_tokens_per_second == 0.0  # not measured yet
    assert engine.time_inline(warm, np.ones_like(warm)) > 0
    # the batcher's first throughput estimate: the 16 timed tokens over the median inline time
    assert engine.warm_tokens_per_second == pytest.approx(16 / engine.inline_seconds)
    small = rng.integers(1000, 2000, size=(2, INLINE_TOKENS // 2))
    large = rng.integers(1000, 2000, size=(2, INLINE_TOKENS // 2 + 1))
    got_small, inline_small = _start(engine, small)
    got_large, inline_large = _start(engine, large)
    assert (inline_small, inline_large, engine.inlined) == (True, False, 1)
    np.testing.assert_allclose(got_small, engine.infer(small, np.ones_like(small)), atol=1e-6)
    np.testing.assert_allclose(got_large, engine.infer(large, np.ones_like(large)), atol=1e-6)
    engine.close()


def test_inline_waits_for_running_batches_and_stops_when_too_slow(minilm_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import numpy as np

    from ovembed.serving.openvino import executor as engine_module

    engine = OpenVINOExecutor(_compiled_minilm(minilm_dir, {"NUM_STREAMS": "1"}), infer_requests=2)
    ids = np.full((1, 8), 1500, dtype=np.int64)
    # a batch still running: the next lone batch must not run beside it on the caller's thread
    release = threading.Event()
    long_ids = np.full((8, 256), 1500, dtype=np.int64)
    engine.start(long_ids, np.ones_like(long_ids), lambda out: release.wait(30))
    _, inline = _start(engine, ids)
    release.set()
    assert not inline and engine.inlined == 0
    engine.close()
    # an inline inference slower than INLINE_MAX_S on average: async, except one in 100 (a retry)
    monkeypatch.setattr(engine_module, "INLINE_MAX_S", 0.0)
    assert engine.time_inline(ids, np.ones_like(ids)) > 0
    inlined = [_start(engine, ids)[1] for _ in range(100)]
    assert inlined.count(True) == 1 and inlined[-1]
    monkeypatch.setattr(engine_module, "INLINE_MAX_S", 10.0)
    assert _start(engine, ids)[1]
    engine.close()


def test_async_batches_of_new_shapes_equal_infer(minilm_dir: Path) -> None:
    """A fresh engine: a (2, 32) batch, then a (2, 33) one on the queue's second request. With
    share_inputs=True the second came back wrong (max abs diff 0.12-0.15, OpenVINO 2026.4 CPU)."""
    import numpy as np

    rng = np.random.default_rng(1)
    small = rng.integers(1000, 2000, size=(2, 32))
    large = rng.integers(1000, 2000, size=(2, 33))
    for order in ((small, large), (large, small, large), (small, small, large)):
        engine = OpenVINOExecutor(_compiled_minilm(minilm_dir, {"NUM_STREAMS": "1"}), inline=False)
        outs = [_start(engine, ids)[0] for ids in order]
        for ids, out in zip(order, outs, strict=True):
            np.testing.assert_allclose(out, engine.infer(ids, np.ones_like(ids)), atol=1e-6)
        engine.close()


def _lone_copies(minilm_dir: Path, widths: tuple[int, ...]) -> dict[int, Any]:
    """The pooled MiniLM compiled (f32) for one row of each width, as load_model compiles them."""
    import openvino as ov

    from ovembed.graphs import read_graph
    from ovembed.heads.embeddings import add_pooling
    from ovembed.serving.openvino.lone import compile_static_copies

    core = ov.Core()
    graph = read_graph(minilm_dir)
    model = add_pooling(core.read_model(minilm_dir / "openvino_model.xml"), graph.pooling, graph.normalize_embeddings)
    return compile_static_copies(core, model, widths, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": "1"},
                        budget=2**40, estimate=0)


def test_lone_queries_run_on_the_narrowest_static_copy_with_the_same_vectors(
        minilm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One row of up to 32 tokens runs on the narrowest static-shape copy that fits (padded with the
    pad id), anything else on the dynamic inline request; every vector equals infer()'s."""
    import numpy as np

    from ovembed.serving.openvino import executor as engine_module

    monkeypatch.setattr(engine_module, "INLINE_MAX_S", 10.0)  # a busy CI machine: inline whatever it measures
    engine = OpenVINOExecutor(_compiled_minilm(minilm_dir, {"NUM_STREAMS": "1"}))
    engine.set_lone_shapes(_lone_copies(minilm_dir, (16, 32)))
    engine.pad_id = 0
    assert engine.lone_widths == (16, 32)
    rng = np.random.default_rng(3)
    for length, static in ((3, 1), (16, 2), (17, 3), (32, 4), (33, 4)):
        ids = rng.integers(1000, 2000, size=(1, length))
        got, inline = _start(engine, ids)
        assert inline and engine.lone_static == static, length
        np.testing.assert_allclose(got, engine.infer(ids, np.ones_like(ids)), atol=1e-5)
    pair = rng.integers(1000, 2000, size=(2, 8))  # two rows: never a lone copy
    got, inline = _start(engine, pair)
    assert inline and engine.lone_static == 4
    np.testing.assert_allclose(got, engine.infer(pair, np.ones_like(pair)), atol=1e-5)
    engine.set_lone_shapes({})
    assert engine.lone_widths == ()
    engine.close()


def test_lone_queries_are_timed_every_way_and_padding_keeps_the_vectors(minilm_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """time_lone times every LONE_LENGTHS query exact, padded and (with static copies) on them, after
    a warm-up round; it leaves the inline decision's samples alone; a padded lone query's vector is
    the exact one's."""
    import numpy as np

    from ovembed.serving.openvino import executor as engine_module
    from ovembed.serving.openvino.lone import LONE_LENGTHS

    monkeypatch.setattr(engine_module, "LONE_BUDGET_S", 600.0)  # a busy CI machine: time it all
    engine = OpenVINOExecutor(_compiled_minilm(minilm_dir, {"NUM_STREAMS": "1"}))
    widths: list[tuple[int, bool]] = []
    infer = engine._infer_inline

    def counted(feed: dict[int, Any], record: bool = True, request: Any = None) -> Any:
        widths.append((next(iter(feed.values())).shape[1], request is engine._inline_request))
        return infer(feed, record, request)

    engine._infer_inline = counted  # type: ignore[method-assign]
    timed = engine.time_lone(1500, 0, 8, rounds=2)
    assert set(timed) == {"exact", "padded"} and min(timed.values()) > 0 and engine.inline_seconds == 0.0
    assert sorted({w for w, _ in widths}) == sorted({*LONE_LENGTHS, 8, 16, 24, 32})
    assert len(widths) == 3 * 2 * len(LONE_LENGTHS) and all(dynamic for _, dynamic in widths)
    widths.clear()
    engine.set_lone_shapes(_lone_copies(minilm_dir, (16, 32)))
    timed = engine.time_lone(1500, 0, 8, rounds=2)
    assert set(timed) == {"exact", "padded", "static"} and min(timed.values()) > 0
    static = [w for w, dynamic in widths if not dynamic]
    assert len(static) == 3 * len(LONE_LENGTHS) and set(static) == {16, 32}
    ids = np.full((1, 5), 1500, dtype=np.int64)
    padded_ids = np.zeros((1, 8), dtype=np.int64)
    padded_ids[0, :5] = 1500
    mask = np.zeros((1, 8), dtype=np.int64)
    mask[0, :5] = 1
    np.testing.assert_allclose(engine.infer(padded_ids, mask), engine.infer(ids, np.ones_like(ids)), atol=1e-5)
    engine.close()
    assert OpenVINOExecutor(_compiled_minilm(minilm_dir, {}), inline=False).time_lone(1500, 0, 8) == {}


def test_lone_queries_are_not_timed_past_their_budget(minilm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose warm-up round is slow (a large one) is not timed further: nothing timed."""
    from ovembed.serving.openvino import executor as engine_module

    monkeypatch.setattr(engine_module, "LONE_BUDGET_S", 0.0)
    engine = OpenVINOExecutor(_compiled_minilm(minilm_dir, {"NUM_STREAMS": "1"}))
    runs: list[int] = []
    infer = engine._infer_inline

    def counted(feed: dict[int, Any], record: bool = True, request: Any = None) -> Any:
        runs.append(1)
        return infer(feed, record, request)

    engine._infer_inline = counted  # type: ignore[method-assign]
    assert engine.time_lone(1500, 0, 8) == {}
    assert len(runs) == 2 * len(engine_module.LONE_LENGTHS)  # the warm-up round only
    engine.close()


@pytest.mark.parametrize(("timed", "pads", "widths"), [
    ({"exact": 0.002, "padded": 0.001, "static": 0.003}, True, ()),
    ({"exact": 0.001, "padded": 0.002, "static": 0.003}, False, ()),
    ({"exact": 0.002, "padded": 0.002, "static": 0.001}, True, (8, 16, 32)),
    ({"exact": 0.002, "padded": 0.002, "static": 0.0019}, True, ()),  # not clearly faster: memory back
    ({}, True, ()),  # not timed: padded like batches, no static copies
])
def test_load_runs_lone_queries_the_way_that_measured_fastest(
        minilm_dir: Path, monkeypatch: pytest.MonkeyPatch, timed: dict[str, float], pads: bool,
        widths: tuple[int, ...]) -> None:
    import openvino as ov

    from ovembed.serving.openvino import loader as engine_module

    trims: list[int] = []
    monkeypatch.setattr(engine_module, "trim_heap", lambda: trims.append(1) or True)
    monkeypatch.setattr(OpenVINOExecutor, "time_lone", lambda self, *args, **kwargs: dict(timed))
    loaded = load_model(ov.Core(), "minilm", minilm_dir, ServeConfig(lone_shapes_max_mb=1000))
    assert (loaded.engine.pad_lone, loaded.engine.lone_widths, loaded.engine.pad_id) == (pads, widths, 0)
    assert trims == ([] if widths else [1])  # dropped copies: their memory given back at once
    loaded.engine.close()


def test_load_compiles_static_copies_while_they_fit_in_the_memory_limit(
        minilm_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The fp32 MiniLM (a 90 MB weights file, ~55 MB per copy) gets none within the default 80 MB
    (its file alone is over) or with 0, one with 100 (a second would make 180), all three with 1000,
    also from the headed IR that --cache_dir compiles; the timing sees the copies that were compiled."""
    import openvino as ov

    seen: list[tuple[int, ...]] = []

    def timed(self: OpenVINOExecutor, *args: Any, **kwargs: Any) -> dict[str, float]:
        seen.append(self.lone_widths)
        return {"exact": 0.002, "padded": 0.001, **({"static": 0.0005} if self.lone_widths else {})}

    monkeypatch.setattr(OpenVINOExecutor, "time_lone", timed)
    for cfg in (ServeConfig(), ServeConfig(lone_shapes_max_mb=0), ServeConfig(lone_shapes_max_mb=100),
                ServeConfig(lone_shapes_max_mb=1000),
                ServeConfig(lone_shapes_max_mb=1000, cache_dir=tmp_path / "cache")):
        load_model(ov.Core(), "minilm", minilm_dir, cfg).engine.close()
    assert seen == [(), (), (16,), (8, 16, 32), (8, 16, 32)]


class _ShapelessModel:
    """Stands in for an ov.Model in compile_static_copies: no inputs, reshape accepted."""

    inputs = ()

    def clone(self) -> _ShapelessModel:
        return self

    def reshape(self, shapes: Any) -> None:
        pass


@pytest.mark.parametrize(("grows", "budget", "estimate", "widths"), [
    (30, 100, 20, (8, 16, 32)),  # 20 expected, then 30 each: 30, 60, 90
    (30, 80, 20, (8, 16)),  # a third would make 90
    (30, 100, 120, ()),  # the weights file alone is over: nothing compiled
    (0, 100, 40, (8, 16)),  # no /proc: every copy is expected to take the file's size
])
def test_static_copies_are_compiled_in_order_while_they_fit(monkeypatch: pytest.MonkeyPatch, grows: int,
                                                             budget: int, estimate: int,
                                                             widths: tuple[int, ...]) -> None:
    from ovembed.serving.openvino import lone as engine_module

    mb = 2**20
    resident = [0]
    compiled: list[int] = []

    class Core:
        def compile_model(self, model: Any, device: str, config: Any) -> str:
            resident[0] += grows * mb
            compiled.append(1)
            return "compiled"

    monkeypatch.setattr(engine_module, "_resident_bytes", lambda: resident[0])
    out = engine_module.compile_static_copies(Core(), _ShapelessModel(), engine_module.LONE_WIDTHS, "CPU", {},  # type: ignore[arg-type]
                                     budget=budget * mb, estimate=estimate * mb)
    assert tuple(sorted(out)) == widths and len(compiled) == len(widths)


def test_a_graph_that_cannot_take_a_static_shape_keeps_the_copies_made_before(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """OpenVINO failing to reshape or compile a copy is not a load failure: the copies made so far
    stay, the rest are skipped, and the log says why."""
    from ovembed.serving.openvino import lone as engine_module

    class Core:
        calls = 0

        def compile_model(self, model: Any, device: str, config: Any) -> str:
            Core.calls += 1
            if Core.calls == 2:
                raise RuntimeError("Exception from src/core.cpp:1:\nshape inference failed for node X")
            return "compiled"

    monkeypatch.setattr(engine_module, "_resident_bytes", lambda: 0)
    with caplog.at_level("WARNING", logger="ovembed.serving"):
        out = engine_module.compile_static_copies(Core(), _ShapelessModel(), (16, 8, 32), "CPU", {}, "m",  # type: ignore[arg-type]
                                         budget=2**40, estimate=0)
    assert list(out) == [16] and Core.calls == 2
    assert "no static-shape copy for 8 tokens: shape inference failed for node X" in caplog.text
