"""Files under a served model change while it serves: ``cp`` over the .bin (even identical
bytes), ``truncate``, ``rm``. The process keeps answering with the version it loaded, the
reloader reports the broken file in /v1/config, and a good file is picked up as a new version."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.live_server import LiveServer, live_server

pytestmark = pytest.mark.reliability


def _repo(tmp_path: Path, minilm_repo: Path) -> Path:
    source = minilm_repo.parent / "minilm"
    entries = []
    for name in ("m1", "m2"):
        shutil.copytree(source, tmp_path / name)
        entries.append({"config": {"name": name, "base_path": name}})
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_config_list": entries}))
    return config


def _embed(server: LiveServer, model: str) -> np.ndarray:
    response = httpx.post(f"{server.base_url}/v3/embeddings", json={"model": model, "input": "the same text"},
                          timeout=60)
    assert response.status_code == 200, response.text
    return np.array(response.json()["data"][0]["embedding"], dtype=np.float32)


def _status(server: LiveServer, model: str) -> dict[str, Any]:
    body = httpx.get(f"{server.base_url}/v1/config", timeout=10).json()
    status: dict[str, Any] = body[model]["model_version_status"][0]
    return status


def _wait(server: LiveServer, model: str, done: Any, what: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(server, model)
        if done(status):
            return status
        time.sleep(0.2)
    pytest.fail(f"{what}: /v1/config still says {status}\n{server.log_text()[-3000:]}")


def test_in_place_changes_never_reach_the_running_model(tmp_path: Path, minilm_repo: Path) -> None:
    config = _repo(tmp_path, minilm_repo)
    weights = tmp_path / "m2" / "openvino_model.bin"
    good = tmp_path / "good.bin"
    shutil.copyfile(weights, good)
    with live_server(config, tmp_path / "server.log", "--file_system_poll_wait_seconds", "0.2") as server:
        before = _embed(server, "m2")
        np.testing.assert_allclose(_embed(server, "m1"), before, atol=1e-6)

        shutil.copyfile(tmp_path / "m1" / "openvino_model.bin", weights)  # cp, identical bytes
        np.testing.assert_allclose(_embed(server, "m2"), before, atol=1e-6)
        _wait(server, "m2", lambda s: s["version"] == "2" and s["state"] == "AVAILABLE",
              "an in-place copy is a new version")
        np.testing.assert_allclose(_embed(server, "m2"), before, atol=1e-6)

        os.truncate(weights, weights.stat().st_size // 2)  # truncate -s 50%
        np.testing.assert_allclose(_embed(server, "m2"), before, atol=1e-6)
        status = _wait(server, "m2", lambda s: "reload failed" in s["status"]["error_message"],
                       "a truncated file is reported")
        assert status["state"] == "AVAILABLE" and status["version"] == "2"
        assert "Incorrect weights in bin file" in status["status"]["error_message"], status
        np.testing.assert_allclose(_embed(server, "m2"), before, atol=1e-6)

        weights.unlink()  # rm
        _wait(server, "m2", lambda s: "openvino_model.bin" in s["status"]["error_message"],
              "a deleted file is reported")
        np.testing.assert_allclose(_embed(server, "m2"), before, atol=1e-6)
        np.testing.assert_allclose(_embed(server, "m1"), before, atol=1e-6)

        os.replace(good, weights)  # a good file again: loaded beside the old one and swapped in
        _wait(server, "m2", lambda s: s["version"] == "3" and s["status"]["error_message"] == "OK",
              "a repaired file is a new version")
        np.testing.assert_allclose(_embed(server, "m2"), before, atol=1e-6)
        assert server.process.poll() is None
    log = server.log_text()
    assert "Incorrect weights in bin file" in log  # OpenVINO's full text is in the log
