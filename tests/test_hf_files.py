from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovembed.hf_files import declared_max_length, read_json_object


def _folder(tmp_path: Path, **files: dict[str, object]) -> Path:
    for name, content in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    return tmp_path


def test_sentence_transformers_limit_wins(tmp_path: Path) -> None:
    folder = _folder(tmp_path, sentence_bert_config={"max_seq_length": 256},
                     config={"model_type": "bert", "max_position_embeddings": 512})
    assert declared_max_length(folder) == (256, "sentence_bert_config.json max_seq_length")


@pytest.mark.parametrize(("model_type", "pad", "expected"), [
    ("bert", 0, 512), ("roberta", 1, 512), ("xlm-roberta", 1, 512), ("mpnet", 1, 512), ("roberta", None, 512),
])
def test_position_table(tmp_path: Path, model_type: str, pad: int | None, expected: int) -> None:
    positions = 512 if model_type == "bert" else 514
    config: dict[str, object] = {"model_type": model_type, "max_position_embeddings": positions}
    if pad is not None:
        config["pad_token_id"] = pad
    assert declared_max_length(_folder(tmp_path, config=config))[0] == expected  # type: ignore[index]


def test_tokenizer_limit_caps_and_fills_in(tmp_path: Path) -> None:
    folder = _folder(tmp_path, config={"model_type": "qwen3", "max_position_embeddings": 32768},
                     tokenizer_config={"model_max_length": 8192})
    assert declared_max_length(folder) == (8192, "tokenizer_config.json model_max_length")
    huge = _folder(tmp_path, config={"model_type": "x"}, tokenizer_config={"model_max_length": 1e30})
    assert declared_max_length(huge) is None


def test_read_json_object_never_raises(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "list.json").write_text("[1]")
    assert read_json_object(tmp_path / "bad.json") == {}
    assert read_json_object(tmp_path / "list.json") == {}
    assert read_json_object(tmp_path / "missing.json") == {}
