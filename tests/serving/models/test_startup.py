"""What serve says once the start has settled (ovembed/serving/models/startup.py), and --model_path hints."""
from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from ovembed.config import ServeConfig
from ovembed.exitcodes import ExitCode
from ovembed.serving.api import ModelState
from ovembed.serving.models.startup import folder_hint, report_start
from tests.serving.fakes import FakeRegistry, FakeServable


def _report(registry: FakeRegistry, cfg: ServeConfig, grpc: int | None = None) -> list[str]:
    stops: list[str] = []

    async def main() -> None:
        await registry.start()
        await asyncio.wait_for(report_start(cfg, registry, grpc_port=lambda: grpc, stop=lambda: stops.append("x")),
                               timeout=10)

    asyncio.run(main())
    return stops


def test_serving_line_names_the_url_and_what_is_not_served(caplog: pytest.LogCaptureFixture) -> None:
    registry = FakeRegistry(FakeServable("a"), FakeServable("b"), failed={"c": "openvino_model.xml not found"})
    with caplog.at_level(logging.INFO, "ovembed.serving"):
        assert _report(registry, ServeConfig(rest_port=8123), grpc=9123) == []
    assert "ovembed serve: serving 2 models on http://127.0.0.1:8123 (gRPC 9123); not serving: c" in caplog.messages


def test_nothing_to_serve_stops_the_server_with_the_reasons(caplog: pytest.LogCaptureFixture) -> None:
    registry = FakeRegistry(failed={"c": "openvino_model.xml not found"})
    with caplog.at_level(logging.INFO, "ovembed.serving"):
        assert _report(registry, ServeConfig()) == ["x"]
    assert caplog.messages == ["ovembed serve: nothing to serve (model 'c': openvino_model.xml not found); "
                               "start with --allow_empty to keep the server up"]
    assert _report(FakeRegistry(failed={"c": "gone"}), ServeConfig(allow_empty=True)) == []


def test_the_report_waits_for_loading_models() -> None:
    registry = FakeRegistry(FakeServable("a"), loading=["a"])
    stops: list[str] = []

    async def main() -> None:
        await registry.start()
        task = asyncio.create_task(report_start(ServeConfig(), registry, grpc_port=lambda: None,
                                                stop=lambda: stops.append("x")))
        await asyncio.sleep(0.3)
        assert not task.done()
        registry.set_state("a", ModelState.UNAVAILABLE, "failed")
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert stops == ["x"]


def test_folder_hints(tmp_path: Path) -> None:
    assert folder_hint(tmp_path / "nope") == f"{tmp_path / 'nope'} does not exist"
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_bytes(b"")
    assert folder_hint(hf) == (f"{hf} is a Hugging Face model folder, not an exported one: serve it with "
                               f"--source_model {hf} (it is exported first) or run 'ovembed export --source_model' "
                               "on it")
    (hf / "graph.pbtxt").write_text("")
    assert folder_hint(hf) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert folder_hint(empty) == f"{empty} has no graph.pbtxt and no OpenVINO IR: it is not an exported model folder"


@pytest.mark.parametrize("kind", ["missing", "huggingface"])
def test_serve_model_path_that_is_no_model_is_one_line_exit_2(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model"
    if kind == "huggingface":
        path.mkdir()
        (path / "config.json").write_text("{}")
        (path / "modules.json").write_text("[]")
    proc = subprocess.run([sys.executable, "-m", "ovembed", "serve", "--model_path", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == ExitCode.USAGE
    [line] = proc.stderr.splitlines()
    expected = "does not exist" if kind == "missing" else f"serve it with --source_model {path}"
    assert "ovembed serve: --model_path: " in line and expected in line
