"""`ovembed list` and `ovembed remove` (ovembed/inventory.py) on a real exported repository."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ovembed.cli import main
from ovembed.repository import read_config


@pytest.fixture()
def repo(minilm_repo: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "models"
    shutil.copytree(minilm_repo.parent / "minilm", repo / "minilm")
    (repo / "config.json").write_text(json.dumps({"model_config_list": [
        {"config": {"name": "minilm", "base_path": "minilm"}},
        {"config": {"name": "gone", "base_path": "gone"}},
        {"config": {"name": "cloud", "base_path": "gs://bucket/m"}},
    ]}))
    return repo


def test_list(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--model_repository_path", str(repo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "TASK", "POOLING", "WEIGHTS", "DIMS", "MAX", "LEN", "SIZE", "STATE"]
    assert lines[1].split()[:6] == ["minilm", "embeddings", "MEAN", "fp32", "384", "256"]
    assert lines[1].endswith("ok") and " MB " in lines[1]
    assert lines[2].split()[0] == "gone" and lines[2].endswith("folder missing")
    assert lines[3].startswith("cloud") and "gs storage" in lines[3]

    assert main(["list", "--model_repository_path", str(repo), "--json"]) == 0
    models = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert models["minilm"]["pooling"] == "MEAN" and models["minilm"]["dimensions"] == 384
    assert models["minilm"]["size_bytes"] > 80_000_000  # fp32 MiniLM


def test_list_shows_detected_pooling(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = repo / "minilm" / "graph.pbtxt"
    graph.write_text(graph.read_text().replace("      pooling: MEAN\n", ""))
    assert main(["list", "--model_repository_path", str(repo), "--json"]) == 0
    minilm = json.loads(capsys.readouterr().out)[0]
    assert minilm["pooling"] == "MEAN (1_Pooling/config.json)"


def test_remove(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["remove", "--model_repository_path", str(repo), "--model_name", "minilm"]) == 0
    assert "removed minilm from" in capsys.readouterr().out
    assert [e.name for e in read_config(repo / "config.json")] == ["gone", "cloud"]
    assert (repo / "minilm" / "graph.pbtxt").is_file()  # files kept
    assert main(["remove", "--model_repository_path", str(repo), "--model_name", "minilm"]) == 1
    assert "model 'minilm' is not in" in capsys.readouterr().err


def test_remove_and_delete_files(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["remove", "--model_repository_path", str(repo), "--model_name", "minilm", "--delete_files"]) == 0
    assert not (repo / "minilm").exists()
    assert "and deleted" in capsys.readouterr().out
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "config.json").write_text(json.dumps({"model_config_list": [
        {"config": {"name": "x", "base_path": str(outside)}}]}))
    assert main(["remove", "--model_repository_path", str(repo), "--model_name", "x", "--delete_files"]) == 1
    assert "not deleting" in capsys.readouterr().err and outside.is_dir()
    assert [e.name for e in read_config(repo / "config.json")] == ["x"]  # nothing changed
