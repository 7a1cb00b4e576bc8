"""Serving tokenization from MiniLM's tokenizer.json (which declares padding/truncation to 128)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovembed.errors import ConfigError, InputTooLong, InvalidInput
from ovembed.serving.tasks.tokenizer import ServingTokenizer

LONG = "word " * 300  # 302 tokens with [CLS] and [SEP]


@pytest.fixture(scope="module")
def tok(minilm_source: Path) -> ServingTokenizer:
    return ServingTokenizer.from_dir(minilm_source, max_length=256)


def test_special_tokens_and_no_declared_padding_or_truncation(tok: ServingTokenizer) -> None:
    ids = tok.encode_texts(["hello world", LONG], truncate=True)
    assert ids[0] == [101, 7592, 2088, 102]  # not padded to 128
    assert len(ids[1]) == 256  # not cut at 128
    assert len(tok.tokenize([LONG])[0]) == 302
    assert tok.pad_id == 0 and tok.num_special_tokens == 2 and tok.vocab_size == 30522


def test_too_long_without_truncation(tok: ServingTokenizer) -> None:
    with pytest.raises(InputTooLong) as info:
        tok.encode_texts(["short", LONG], truncate=False)
    assert str(info.value) == ("input[1] has 302 tokens; the model takes at most 256: send truncate=true "
                               "(or chunking) or shorten it")
    assert info.value.index == 1
    exact = "word " * 254  # exactly 256 with specials: allowed
    assert len(tok.encode_texts([exact], truncate=False)[0]) == 256


def test_truncation_matches_hugging_face(tok: ServingTokenizer, minilm_source: Path) -> None:
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(str(minilm_source))
    texts = [LONG, "A sentence of moderate length, with punctuation! " * 30, "hi"]
    ours = tok.encode_texts(texts, truncate=True)
    theirs = hf(texts, truncation=True, max_length=256)["input_ids"]
    assert ours == theirs
    assert ours[0][0] == 101 and ours[0][-1] == 102  # [CLS] ... [SEP] kept


def test_batch_equals_one_by_one(tok: ServingTokenizer) -> None:
    texts = ["one", "two words", "", "Ünïcödé and 中文 text", "x" * 50]
    batch = tok.encode_texts(texts, truncate=False)
    assert batch == [tok.encode_texts([t], truncate=False)[0] for t in texts]
    assert batch[2] == [101, 102]


def test_token_id_inputs(tok: ServingTokenizer) -> None:
    docs = tok.encode_ids([[7592, 2088], np.array([1, 2, 3], dtype=np.int32)], truncate=False)
    assert [d.tolist() for d in docs] == [[7592, 2088], [1, 2, 3]]  # no special tokens
    assert all(d.dtype == np.int64 for d in docs)
    cut = tok.encode_ids([list(range(1, 301))], truncate=True)
    assert cut[0].tolist() == list(range(1, 257))
    with pytest.raises(InputTooLong, match=r"input\[0\] has 300 tokens; the model takes at most 256: "):
        tok.encode_ids([list(range(1, 301))], truncate=False)


@pytest.mark.parametrize("doc, message", [
    ([30522], "token id 30522 outside the vocabulary"),
    ([5, -1], "token id -1 outside the vocabulary"),
    ([], "non-empty"),
    ([1.5, 2.0], "integer token ids"),
    ([[1, 2]], "integer token ids"),
    (["a"], "integer token ids"),
])
def test_bad_token_ids(tok: ServingTokenizer, doc: list[object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        tok.encode_ids([[1, 2], doc], truncate=True)  # type: ignore[list-item]


def test_non_string_text_is_invalid(tok: ServingTokenizer) -> None:
    with pytest.raises(InvalidInput, match=r"input\[1\] must be a string"):
        tok.encode_texts(["ok", 5], truncate=True)  # type: ignore[list-item]


def test_tokenize_like_ovms(tok: ServingTokenizer) -> None:
    assert tok.tokenize(["hello world"]) == [[101, 7592, 2088, 102]]
    assert tok.tokenize(["hello world"], add_special_tokens=False) == [[7592, 2088]]
    assert tok.tokenize(["hello big world"], max_length=3) == [[101, 7592, 102]]
    assert tok.tokenize(["hello big world"], max_length=2, add_special_tokens=False) == [
        [7592, 2502]]
    assert tok.tokenize(["hello world"], max_length=6, pad_to_max_length=True) == [
        [101, 7592, 2088, 102, 0, 0]]
    assert tok.tokenize(["hello world"], max_length=6, pad_to_max_length=True,
                        padding_side="left") == [[0, 0, 101, 7592, 2088, 102]]
    assert len(tok.tokenize(["hi"], pad_to_max_length=True)[0]) == 256  # model maximum
    with pytest.raises(InvalidInput, match="padding_side"):
        tok.tokenize(["x"], padding_side="middle")
    with pytest.raises(InvalidInput, match="max_length"):
        tok.tokenize(["x"], max_length=0)


def test_missing_or_broken_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tokenizer\.json not found"):
        ServingTokenizer.from_dir(tmp_path, max_length=16)
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        ServingTokenizer.from_dir(tmp_path, max_length=16)
