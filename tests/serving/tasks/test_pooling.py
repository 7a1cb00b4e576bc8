from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovembed.config import Pooling
from ovembed.hf_files import declared_pooling
from ovembed.serving.tasks.pooling import resolve_pooling


def _pooling_config(folder: Path, **flags: bool) -> None:
    (folder / "1_Pooling").mkdir(parents=True, exist_ok=True)
    conf = {"word_embedding_dimension": 384, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False,
            "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, **flags}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(conf))


@pytest.mark.parametrize(("flag", "pooling"), [("pooling_mode_cls_token", "CLS"),
                                               ("pooling_mode_mean_tokens", "MEAN"),
                                               ("pooling_mode_lasttoken", "LAST")])
def test_declared_pooling(tmp_path: Path, flag: str, pooling: str) -> None:
    _pooling_config(tmp_path, **{flag: True})
    assert declared_pooling(tmp_path) == (pooling, None)


def test_declared_pooling_problems(tmp_path: Path) -> None:
    assert declared_pooling(tmp_path) == (None, None)
    _pooling_config(tmp_path, pooling_mode_max_tokens=True)
    assert declared_pooling(tmp_path)[1] == f"{tmp_path}/1_Pooling/config.json asks for pooling_mode_max_tokens, " \
                                            "which is not CLS, MEAN or LAST pooling"
    _pooling_config(tmp_path, pooling_mode_max_tokens=False, pooling_mode_cls_token=True,
                    pooling_mode_mean_tokens=True)
    assert "sets more than one pooling mode (CLS, MEAN)" in str(declared_pooling(tmp_path)[1])
    (tmp_path / "1_Pooling" / "config.json").write_text("[1]")
    assert "is not a JSON object" in str(declared_pooling(tmp_path)[1])


def test_graph_wins(tmp_path: Path) -> None:
    choice = resolve_pooling(Pooling.CLS, tmp_path, {"pooling": "MEAN"})
    assert (choice.pooling, choice.origin, choice.warning) == (Pooling.CLS, "graph.pbtxt", None)


def test_graph_contradicted_by_the_folder_says_so(tmp_path: Path) -> None:
    _pooling_config(tmp_path, pooling_mode_mean_tokens=True)
    choice = resolve_pooling(Pooling.CLS, tmp_path, {})
    assert choice.pooling is Pooling.CLS
    assert choice.warning == ("graph.pbtxt says pooling CLS but the model's 1_Pooling/config.json says MEAN; "
                              "serving CLS as the graph says")


def test_detected_from_the_folder(tmp_path: Path) -> None:
    _pooling_config(tmp_path, pooling_mode_mean_tokens=True)
    choice = resolve_pooling(None, tmp_path, {"pooling": "CLS"})  # the folder beats the record, as in OVMS
    assert (choice.pooling, choice.origin, choice.warning) == (Pooling.MEAN, "1_Pooling/config.json", None)


def test_record_then_default(tmp_path: Path) -> None:
    choice = resolve_pooling(None, tmp_path, {"pooling": "LAST"})
    assert (choice.pooling, choice.origin, choice.warning) == (Pooling.LAST, "ovembed_model.json", None)
    choice = resolve_pooling(None, tmp_path, {})
    assert choice.pooling is Pooling.CLS and choice.origin == "default"
    assert choice.warning == ("graph.pbtxt sets no pooling and the model folder does not tell (no 1_Pooling/"
                              "config.json or ovembed_model.json says); serving CLS pooling")


def test_unusable_folder_config_is_reported(tmp_path: Path) -> None:
    _pooling_config(tmp_path, pooling_mode_max_tokens=True)
    choice = resolve_pooling(None, tmp_path, {"pooling": "MEAN"})
    assert choice.pooling is Pooling.MEAN and "asks for pooling_mode_max_tokens" in str(choice.warning)
    choice = resolve_pooling(None, tmp_path, {})
    assert choice.pooling is Pooling.CLS and "asks for pooling_mode_max_tokens" in str(choice.warning)
