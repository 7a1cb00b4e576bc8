"""The rerank head: token-type rule read off pair templates, record parsing, the in-graph score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovembed.heads.rerank import (
    ACTIVATED,
    OUTPUT_NAME,
    RAW,
    RerankHead,
    _derived_types,
    add_rerank_head,
    separator_for_token_types,
)
from tests.tiny_models import CORPUS


def _tokenizer(source: Path):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(source / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def test_bert_separator_and_rule_match_the_tokenizer(rerank_sources: dict[str, Path]) -> None:
    tok = _tokenizer(rerank_sources["bert-rerank"])
    sep = separator_for_token_types(tok)
    assert sep == tok.token_to_id("[SEP]")
    for a, b in zip(CORPUS[:10], reversed(CORPUS[:10]), strict=True):
        enc = tok.encode(a, b)
        assert _derived_types(np.array([enc.ids]), sep)[0].tolist() == enc.type_ids


def test_xlmr_template_has_no_token_types(rerank_sources: dict[str, Path]) -> None:
    assert separator_for_token_types(_tokenizer(rerank_sources["xlmr-rerank"])) is None


def test_unsupported_template_is_refused() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "c": 2, "d": 3, "[X]": 4, "[UNK]": 5}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # type 1 on the first segment, 0 on the second: no "1 after the first separator" rule gives that
    tok.post_processor = processors.TemplateProcessing(single="$A:0", pair="$A:1 [X]:0 $B:0",
                                                       special_tokens=[("[X]", 4)])
    with pytest.raises(ValueError, match="starts with token type 1"):
        separator_for_token_types(tok)


def test_head_record_round_trip_and_ovms_default() -> None:
    head = RerankHead(label=0, activation="identity", sep_token_id=102)
    assert RerankHead.from_record(head.describe(), num_labels=1) == head
    assert RerankHead.from_record(None, num_labels=2) == RerankHead(label=1)  # OVMS: column 1 of two logits
    with pytest.raises(ValueError, match="not a column of 1 logits"):
        RerankHead.from_record({"label": 3}, num_labels=1)
    with pytest.raises(ValueError, match="activation 'softmax' is not one of sigmoid, identity"):
        RerankHead.from_record({"activation": "softmax"}, num_labels=1)


def test_head_outputs_raw_and_sigmoid_and_replaces_token_types(rerank_repo: Path) -> None:
    import openvino as ov

    core = ov.Core()
    xml = rerank_repo.parent / "rerank" / "bert" / "openvino_model.xml"
    plain = core.compile_model(core.read_model(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    headed_model = add_rerank_head(core.read_model(xml), RerankHead(sep_token_id=3))
    assert [p.get_any_name() for p in headed_model.inputs] == ["input_ids", "attention_mask"]
    assert headed_model.outputs[0].get_any_name() == OUTPUT_NAME
    headed = core.compile_model(headed_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ids = np.array([[2, 50, 60, 3, 70, 80, 90, 3, 0, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    types = np.array([[0, 0, 0, 0, 1, 1, 1, 1, 0, 0]], dtype=np.int64)
    logit = plain({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0][0, 0]
    scores = headed({"input_ids": ids, "attention_mask": mask})[0]
    assert scores.shape == (1, 2)
    assert scores[0, RAW] == pytest.approx(logit, abs=1e-5)
    assert scores[0, ACTIVATED] == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-6)
    # The types matter to a BERT cross-encoder: all zeros (what OVMS feeds) scores differently.
    zeros = plain({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0][0, 0]
    assert abs(zeros - logit) > 1e-3
