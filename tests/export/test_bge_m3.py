"""export --task bge_m3 before any work: the two head files are required and must fit the encoder; the record
carries the heads' sizes and the ids the sparse output drops (ovembed/export/bge_m3.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from ovembed.config import ExportConfig, Task, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.bge_m3 import BgeM3Export, unused_token_ids
from ovembed.export.source import SourceModel


def _source(folder: Path, heads: dict[str, tuple[int, int]]) -> SourceModel:
    import torch

    (folder / "config.json").write_text(json.dumps({"architectures": ["XLMRobertaModel"], "hidden_size": 8}))
    for name, (out_dim, in_dim) in heads.items():
        torch.save(torch.nn.Linear(in_dim, out_dim).state_dict(), folder / name)
    return SourceModel(path=folder, model_type="xlm-roberta", pooling_detected=None, max_length=64,
                       max_length_origin="config.json", hidden_size=8, is_sentence_transformers=False)


def _export(source: SourceModel) -> BgeM3Export:
    export = BgeM3Export(ExportConfig(source_model="org/m", task=Task.BGE_M3), source, lambda _: None)
    export.choices = export.check()
    return export


def test_the_heads_are_read_and_recorded(tmp_path: Path) -> None:
    export = _export(_source(tmp_path, {"sparse_linear.pt": (1, 8), "colbert_linear.pt": (8, 8)}))
    assert export.heads.hidden == 8 and export.heads.dim == 8 and export.heads.sparse_bias is not None

    class Tok:
        special_tokens_map: ClassVar[dict[str, str]] = {
            "cls_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}

        def convert_tokens_to_ids(self, token: str) -> int:
            return ["<s>", "<pad>", "</s>", "<unk>", "<mask>"].index(token)

    assert unused_token_ids(Tok()) == [0, 1, 2, 3]  # not the mask token: FlagEmbedding drops these four
    export.use_tokenizer(Tok())
    record = export.record(WeightFormat.FP32, {})
    assert record["task"] == "bge_m3" and record["dimensions"] == 8
    assert record["bge_m3"] == {"dense_dimensions": 8, "colbert_dimensions": 8, "unused_token_ids": [0, 1, 2, 3]}
    assert set(export.refreshed_fields()) <= set(export.fields())


@pytest.mark.parametrize(("heads", "message"), [
    ({"sparse_linear.pt": (1, 8)}, "has no colbert_linear.pt"),
    ({}, "has no sparse_linear.pt or colbert_linear.pt"),
    ({"sparse_linear.pt": (1, 8), "colbert_linear.pt": (8, 16)}, "do not fit the encoder's hidden size 8"),
])
def test_a_folder_without_fitting_heads_is_refused(tmp_path: Path, heads: dict[str, tuple[int, int]],
                                                   message: str) -> None:
    with pytest.raises(ExportError, match=message) as info:
        _export(_source(tmp_path, heads))
    assert "\n" not in info.value.message
