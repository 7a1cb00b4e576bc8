"""Static int8 export: calibration corpus, the accuracy gate and its fallbacks, the record."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovembed.config import ExportConfig, Quantization, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.pipeline import export_model
from ovembed.export.static_quant import builtin_corpus, builtin_sentences, load_calibration
from ovembed.repository import read_record

pytestmark = pytest.mark.filterwarnings("ignore")


def _static(source: Path, repo: Path, name: str, **kw: object):  # type: ignore[no-untyped-def]
    cfg = ExportConfig(source_model=str(source), model_name=name, model_repository_path=repo,
                       weight_format=WeightFormat.INT8, quantization=Quantization.STATIC, **kw)
    return export_model(cfg)


def test_builtin_corpus_is_varied_and_deterministic() -> None:
    sentences = builtin_sentences()
    assert len(sentences) >= 150
    assert any("\n" in s for s in sentences)  # code keeps its line breaks
    scripts = {"Cyrillic": "Москва", "CJK": "的", "Arabic": "ال", "Devanagari": "है"}
    for script, sample in scripts.items():
        assert any(sample in s for s in sentences), script
    corpus = builtin_corpus(300)
    assert corpus == builtin_corpus(300) and len(corpus) == 300
    words = sorted(len(t.split()) for t in corpus)
    assert words[0] <= 3 and words[len(words) // 2] < 60 and words[-1] > 150  # queries to passages
    assert load_calibration(None, 50).describe()["samples"] == 50


def test_calibration_file(tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("first text\n\nsecond text\nthird text\n", encoding="utf-8")
    calibration = load_calibration(texts, 2)
    assert calibration.texts == ["first text", "second text"]
    assert calibration.describe()["source"] == str(texts)
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ExportError, match="has no text"):
        load_calibration(tmp_path / "empty.txt", 10)
    with pytest.raises(ExportError, match="cannot read"):
        load_calibration(tmp_path / "missing.txt", 10)
    with pytest.raises(ExportError, match="at least 1"):
        load_calibration(None, 0)


def test_static_needs_int8_and_checks_before_any_work(tmp_path: Path) -> None:
    cfg = ExportConfig(source_model=str(tmp_path / "nowhere"), model_repository_path=tmp_path / "repo",
                       weight_format=WeightFormat.FP32, quantization=Quantization.STATIC)
    with pytest.raises(ExportError, match="needs --weight-format int8"):
        export_model(cfg)
    assert not (tmp_path / "repo").exists()


def test_gate_miss_writes_nothing(tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExportError, match="misses the accuracy gate"):
        _static(tiny_source("bert-mean"), tmp_path, "strict", min_cosine=1.01, num_samples=16)
    assert list(tmp_path.iterdir()) == []


def test_minilm_static_int8_passes_its_gate(minilm_source: Path, tmp_path: Path) -> None:
    """Through the CLI in a child process: NNCF, torch and OpenVINO start from a fresh process, as a user's
    export does (the suite's process has compiled hundreds of models by now; CI once segfaulted here)."""
    import subprocess
    import sys

    import openvino as ov

    done = subprocess.run([sys.executable, "-m", "ovembed", "export", "--source_model", str(minilm_source),
                           "--model_name", "minilm", "--model_repository_path", str(tmp_path),
                           "--weight_format", "int8", "--quantization", "static", "--num_samples", "160"],
                          capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, (done.returncode, done.stdout[-3000:], done.stderr[-3000:])
    record = read_record(tmp_path / "minilm")
    assert record["verification"]["min_cosine"] >= 0.99
    quant = record["quantization"]
    assert quant["mode"] == "static" and quant["calibration"]["source"] == "builtin"
    assert quant["calibration"]["samples"] == 160 and len(quant["calibration"]["sha256"]) == 64
    assert quant["gate"]["min_cosine"] >= 0.99 and quant["gate"]["threshold"] == 0.99
    assert record["verification"]["threshold"] == 0.99
    assert all("MatMul" in name for name in quant["float_operations"])
    model = ov.Core().read_model(tmp_path / "minilm" / "openvino_model.xml")
    fake_quantize = [op for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
    assert len(fake_quantize) >= 24  # activations quantized: at least the 4 attention MatMuls x 6 layers
