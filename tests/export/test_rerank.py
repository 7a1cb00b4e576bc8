"""`ovembed export --task rerank` on tiny random cross-encoders: files, graph, record, scores vs
CrossEncoder, refusals before any work, and failed verification leaving nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ovembed.cli import _task_word_as_flag, build_config, build_parser
from ovembed.config import CompareConfig, ExportConfig, Task, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.pipeline import export_model
from ovembed.export.verify import compare_folder
from ovembed.export.verify_rerank import builtin_pairs, exported_scores, rank_agreement, reference_scores
from ovembed.graphs import RerankGraphOptions, read_model_graph
from ovembed.heads.rerank import RerankHead
from ovembed.repository import read_config, read_record
from tests.tiny_models import TINY_INT8_MAX_SCORE_DIFF, TINY_INT8_MIN_RANK_AGREEMENT

pytestmark = pytest.mark.filterwarnings("ignore")
FILES = ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "tokenizer.json", "config.json",
         "graph.pbtxt", "ovembed_model.json")


def test_repository_holds_rerank_and_embeddings_models(rerank_repo: Path) -> None:
    names = {e.name: e.base_path for e in read_config(rerank_repo)}
    assert set(names) == {"rerank/bert", "rerank/xlmr", "embed/bert"}
    for name in ("rerank/bert", "rerank/xlmr"):
        for file in FILES:
            assert (names[name] / file).is_file(), (name, file)
    graph = read_model_graph(names["rerank/xlmr"])
    assert isinstance(graph, RerankGraphOptions)
    assert graph.max_allowed_chunks == 8 and graph.target_device == "CPU"
    assert graph.plugin_config == {"NUM_STREAMS": "1"} and graph.max_position_embeddings is None
    assert not isinstance(read_model_graph(names["embed/bert"]), RerankGraphOptions)


def test_record_has_head_and_verification(rerank_repo: Path) -> None:
    bert = read_record(rerank_repo.parent / "rerank" / "bert")
    assert bert["task"] == "rerank" and bert["weight_format"] == "fp32" and bert["max_length"] == 64
    assert bert["rerank_head"] == {"label": 0, "activation": "sigmoid", "sep_token_id": 3}  # [SEP]
    assert bert["verification"]["max_score_diff"] <= 1e-4 and bert["verification"]["rank_agreement"] == 1.0
    assert bert["max_doc_length"] == 16000
    xlmr = read_record(rerank_repo.parent / "rerank" / "xlmr")
    assert xlmr["rerank_head"]["sep_token_id"] is None  # XLM-R pairs are all token type 0
    assert xlmr["verification"]["threshold"] == TINY_INT8_MAX_SCORE_DIFF  # the fixture's --max_score_diff
    assert xlmr["verification"]["max_score_diff"] <= TINY_INT8_MAX_SCORE_DIFF
    assert xlmr["verification"]["min_rank_agreement"] == TINY_INT8_MIN_RANK_AGREEMENT  # --min_rank_agreement
    assert xlmr["verification"]["rank_agreement"] >= TINY_INT8_MIN_RANK_AGREEMENT


def test_fp32_scores_equal_cross_encoder(rerank_repo: Path, rerank_sources: dict[str, Path]) -> None:
    """Checked again here, independently of the export's own verification."""
    pairs = builtin_pairs()
    ref = reference_scores(rerank_sources["bert-rerank"], pairs, max_length=64, trust_remote_code=False)
    got = exported_scores(rerank_repo.parent / "rerank" / "bert", pairs, head=RerankHead(sep_token_id=3),
                          max_length=64, trust_remote_code=False)
    assert float(np.max(np.abs(ref - got))) < 1e-4
    assert rank_agreement(pairs, ref, got) == 1.0
    assert float(ref.max() - ref.min()) > 0.5  # the tiny model's scores are spread, so ranks mean something


def test_compare_learns_rerank_folders(rerank_repo: Path) -> None:
    report = compare_folder(CompareConfig(model_path=rerank_repo.parent / "rerank" / "xlmr"), log=lambda _: None)
    assert report.passed and len(report.pairs) == len(builtin_pairs())
    report = compare_folder(CompareConfig(model_path=rerank_repo.parent / "rerank" / "bert",
                                          query="capital of france", input=["paris", "berlin", "a dog"]),
                            log=lambda _: None)
    assert report.passed and [p[1] for p in report.pairs] == ["paris", "berlin", "a dog"]
    assert "PASS" in report.summary()


def test_failed_verification_writes_nothing(rerank_sources: dict[str, Path], tmp_path: Path) -> None:
    cfg = ExportConfig(source_model=str(rerank_sources["bert-rerank"]), model_name="org/strict",
                       model_repository_path=tmp_path, task=Task.RERANK, weight_format=WeightFormat.FP32,
                       max_score_diff=1e-12)
    with pytest.raises(ExportError, match="verification failed, nothing was written") as info:
        export_model(cfg)
    assert "max score difference" in info.value.message
    assert not (tmp_path / "org").exists() and not (tmp_path / "config.json").exists()


def test_min_rank_agreement_decides() -> None:
    """Scores within the difference threshold that swap one of a query's three orders: 2/3 agreement."""
    from ovembed.export.verify_rerank import ScoreComparison

    pairs = [("q", "a"), ("q", "b"), ("q", "c")]
    ref, got = np.array([0.9, 0.5, 0.48]), np.array([0.9, 0.48, 0.5])
    loose = ScoreComparison(pairs, ref, got, max_diff_threshold=0.05, min_agreement=0.6)
    strict = ScoreComparison(pairs, ref, got, max_diff_threshold=0.05, min_agreement=0.95)
    assert loose.rank_agreement == pytest.approx(2 / 3) and loose.passed and not strict.passed
    assert "rank agreement 0.667 (threshold 0.95)" in strict.summary() and "FAIL" in strict.summary()


@pytest.mark.slow
def test_embeddings_model_is_refused_before_any_work(tmp_path: Path) -> None:
    from tests.tiny_models import build_bert

    source = build_bert(tmp_path / "src")
    cfg = ExportConfig(source_model=str(source), model_repository_path=tmp_path / "repo", task=Task.RERANK)
    with pytest.raises(ExportError, match=r"needs a cross-encoder \(a \*ForSequenceClassification model\)"):
        export_model(cfg)
    assert not (tmp_path / "repo" / "config.json").exists()


def test_classifier_with_two_labels_is_refused(rerank_sources: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    source = tmp_path / "two"
    shutil.copytree(rerank_sources["bert-rerank"], source)
    config = json.loads((source / "config.json").read_text())
    config["id2label"] = {"0": "NEG", "1": "POS"}
    (source / "config.json").write_text(json.dumps(config))
    cfg = ExportConfig(source_model=str(source), model_repository_path=tmp_path / "repo", task=Task.RERANK)
    with pytest.raises(ExportError, match=r"one logit; .* has 2 labels"):
        export_model(cfg)


@pytest.mark.parametrize("argv", [
    ["export", "rerank_ov", "--source_model", "x"],
    ["export", "--task", "rerank", "--source_model", "x"],
    ["export", "--task", "rerank_ov", "--source_model", "x"],
])
def test_cli_accepts_ovms_task_spellings(argv: list[str]) -> None:
    args = build_parser().parse_args(_task_word_as_flag(argv))
    cfg = build_config(ExportConfig, args)
    assert cfg.task is Task.RERANK and cfg.max_doc_length == 16000 and cfg.max_allowed_chunks == 10000


def test_cli_rejects_unknown_task(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--task", "colbert", "--source_model", "x"])
    err = capsys.readouterr().err
    assert "invalid choice: 'colbert' (choose from embeddings, rerank, sparse, token_embed, classify, bge_m3)" in err
