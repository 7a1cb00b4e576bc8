"""Issue 22: the sentence-transformers chain after pooling and the architectures optimum-intel does not
export here, each exported from a tiny random folder and compared with sentence-transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovembed.config import ExportConfig, WeightFormat
from ovembed.export.pipeline import export_model
from ovembed.repository import RECORD_FILENAME

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(1200)]

FP32_MIN_COSINE = 0.9999


def _export(source: Path, repo: Path, **extra: object) -> tuple[float | None, dict[str, object]]:
    args: dict[str, object] = {"weight_format": WeightFormat.FP32, **extra}
    cfg = ExportConfig(source_model=str(source), model_name="m", model_repository_path=repo,
                       **args)  # type: ignore[arg-type]
    result = export_model(cfg)
    return result.min_cosine, json.loads((result.model_dir / RECORD_FILENAME).read_text())


@pytest.mark.parametrize(("family", "modes", "layers", "dims"), [
    ("bert-dense", ["mean"], ["dense", "normalize"], 16),
    ("bert-stack", ["cls", "max", "mean"], ["dense", "layernorm", "dense"], 16),
    ("bert-weighted", ["mean_sqrt_len_tokens", "weightedmean"], [], 64),
    ("bert-no-prompt", ["mean"], [], 32),
])
def test_module_chain_matches_sentence_transformers(family_source, tmp_path: Path, family: str,  # type: ignore[no-untyped-def]
                                                    modes: list[str], layers: list[str], dims: int) -> None:
    min_cos, record = _export(family_source(family), tmp_path)
    assert min_cos is not None and min_cos >= FP32_MIN_COSINE
    head = record["head"]
    assert isinstance(head, dict)
    assert head["pooling_modes"] == modes and [m["kind"] for m in head["modules"]] == layers
    assert record["dimensions"] == dims and record["route"] == "optimum-intel"
    assert head["include_prompt"] is (family != "bert-no-prompt")
    verification = record["verification"]
    assert isinstance(verification, dict) and verification["texts"] > 24  # prompted texts verified too
    assert ((tmp_path / "m" / "ovembed_head.npz").is_file()) is bool(layers)


def test_dense_int8_within_threshold(family_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    min_cos, record = _export(family_source("bert-dense"), tmp_path, weight_format=WeightFormat.INT8)
    assert record["weight_format"] == "int8"
    assert min_cos is not None and min_cos >= 0.995


@pytest.mark.parametrize("skip_verify", [False, True])
def test_unmappable_module_refused_in_one_line(family_source, tmp_path: Path, capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
                                               skip_verify: bool) -> None:
    from ovembed import cli

    repo = tmp_path / "repo"
    argv = ["export", "--source_model", str(family_source("bert-unmappable")), "--model_repository_path", str(repo),
            "--model_name", "bad", "--weight-format", "fp32"] + (["--skip_verify"] if skip_verify else [])
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "2_WordWeights" in err and "sentence_transformers.models.WordWeights" in err and "Traceback" not in err
    assert not (repo / "bad").exists()
    assert not (repo / "config.json").exists() or "bad" not in (repo / "config.json").read_text()


@pytest.mark.parametrize("family", ["modernbert", "gemma3", "mistral", "llama", "t5"])
def test_architecture_through_convert_model(family_source, tmp_path: Path, family: str) -> None:  # type: ignore[no-untyped-def]
    min_cos, record = _export(family_source(family), tmp_path)
    assert record["route"] == "convert_model"
    assert min_cos is not None and min_cos >= FP32_MIN_COSINE


@pytest.mark.parametrize("family", ["modernbert", "t5"])
def test_convert_model_int8_within_threshold(family_source, tmp_path: Path, family: str) -> None:  # type: ignore[no-untyped-def]
    min_cos, record = _export(family_source(family), tmp_path, weight_format=WeightFormat.INT8)
    assert record["route"] == "convert_model" and record["weight_format"] == "int8"
    assert min_cos is not None and min_cos >= 0.995
