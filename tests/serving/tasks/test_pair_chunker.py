"""Pairs -> windows: every chunk carries the whole query, chunks overlap, limits and truncation."""

from __future__ import annotations

import itertools

import pytest

from ovembed.errors import ConfigError, InvalidInput
from ovembed.serving.tasks.pair_chunker import PairChunker, overlap_for
from tests.tiny_models import bert_pair_tokenizer

QUERY = "what is the capital of france"
LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 6)  # 54 words


@pytest.fixture(scope="module")
def tok_json() -> str:
    return bert_pair_tokenizer().to_str()


@pytest.fixture(scope="module")
def plain(tok_json: str):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tok_json)
    tok.no_truncation()
    tok.no_padding()
    return tok


def test_short_pairs_are_one_chunk_each_as_the_template_encodes_them(tok_json: str, plain) -> None:  # type: ignore[no-untyped-def]
    chunker = PairChunker(tok_json, max_length=64)
    docs = ["paris is the capital", "", "hello world"]
    chunks = chunker.chunk(QUERY, docs)
    assert chunks.chunk_counts == [1, 1, 1] and chunks.doc_index.tolist() == [0, 1, 2]
    assert chunks.ids == [plain.encode(QUERY, d).ids for d in docs]
    assert chunks.token_counts() == [len(plain.encode(QUERY, d).ids) for d in docs]


def test_long_document_is_split_into_overlapping_chunks_with_the_full_query(tok_json: str, plain) -> None:  # type: ignore[no-untyped-def]
    chunker = PairChunker(tok_json, max_length=32)
    q = plain.encode(QUERY, add_special_tokens=False).ids
    d = plain.encode(LONG, add_special_tokens=False).ids
    chunks = chunker.chunk(QUERY, [LONG, "paris"])
    n = chunks.chunk_counts[0]
    assert n > 2 and chunks.chunk_counts[1] == 1 and chunks.doc_index.tolist() == [0] * n + [1]
    cls, sep = plain.token_to_id("[CLS]"), plain.token_to_id("[SEP]")
    slices = []
    for ids in chunks.ids[:n]:
        assert len(ids) <= 32
        assert ids[: len(q) + 2] == [cls, *q, sep] and ids[-1] == sep  # the whole query, every time
        slices.append(ids[len(q) + 2: -1])
    window = 32 - 3 - len(q)
    assert all(len(s) == window for s in slices[:-1])
    overlap = chunker.overlap
    assert overlap == overlap_for(32 - 3 - 16) and overlap > 0
    for a, b in itertools.pairwise(slices):
        assert a[-overlap:] == b[:overlap]  # consecutive chunks share `overlap` tokens
    covered = slices[0] + [t for s in slices[1:] for t in s[overlap:]]
    assert covered == d  # nothing lost, nothing repeated beyond the overlap
    assert chunks.token_counts()[0] == sum(len(ids) for ids in chunks.ids[:n])


def test_max_doc_tokens_cuts_before_chunking(tok_json: str, plain) -> None:  # type: ignore[no-untyped-def]
    chunker = PairChunker(tok_json, max_length=32)
    d = plain.encode(LONG, add_special_tokens=False).ids
    chunks = chunker.chunk(QUERY, [LONG], max_doc_tokens=5)
    q = plain.encode(QUERY, add_special_tokens=False).ids
    assert chunks.chunk_counts == [1]
    assert chunks.ids[0][len(q) + 2: -1] == d[:5]


@pytest.mark.parametrize("direction", ["right", "left"])
def test_truncate_keeps_one_window_from_the_chosen_end(tok_json: str, plain, direction: str) -> None:  # type: ignore[no-untyped-def]
    chunker = PairChunker(tok_json, max_length=32)
    d = plain.encode(LONG, add_special_tokens=False).ids
    q = plain.encode(QUERY, add_special_tokens=False).ids
    chunks = chunker.chunk(QUERY, [LONG], truncate=True, direction=direction)  # type: ignore[arg-type]
    assert chunks.chunk_counts == [1] and len(chunks.ids[0]) == 32
    kept = chunks.ids[0][len(q) + 2: -1]
    assert kept == (d[: len(kept)] if direction == "right" else d[-len(kept):])


def test_long_query_keeps_half_the_window(tok_json: str, plain) -> None:  # type: ignore[no-untyped-def]
    chunker = PairChunker(tok_json, max_length=32)
    chunks = chunker.chunk(LONG, ["paris"])
    ids = chunks.ids[0]
    sep = plain.token_to_id("[SEP]")
    assert ids.index(sep) - 1 == 16  # query tokens between [CLS] and the first [SEP]: max_length // 2
    assert ids[1:17] == plain.encode(LONG, add_special_tokens=False).ids[:16]


def test_bad_documents_and_tiny_windows(tok_json: str) -> None:
    with pytest.raises(InvalidInput, match=r"documents\[1\] must be a string"):
        PairChunker(tok_json, max_length=32).chunk(QUERY, ["a", 3])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="leaves no room"):
        PairChunker(tok_json, max_length=6)
