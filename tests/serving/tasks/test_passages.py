"""Token-boundary chunking and the weighted mean of chunk vectors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovembed.errors import InvalidInput
from ovembed.serving.api import ChunkingOptions
from ovembed.serving.tasks.passages import chunk_document, spans, weighted_mean


def test_spans() -> None:
    assert spans(0, 4, 0) == [(0, 0)]
    assert spans(4, 4, 0) == [(0, 4)]
    assert spans(12, 4, 0) == [(0, 4), (4, 8), (8, 12)]
    assert spans(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert spans(9, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 9)]
    for size, overlap in ((0, 0), (4, 4), (4, -1)):
        with pytest.raises(InvalidInput):
            spans(10, size, overlap)


@given(st.integers(0, 200), st.integers(1, 20), st.data())
def test_spans_cover_everything_with_the_given_overlap(length: int, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    out = spans(length, size, overlap)
    assert out[0][0] == 0 and out[-1][1] == length
    assert all(0 < e - s <= size for s, e in out) or length == 0
    for (_, e1), (s2, _) in itertools.pairwise(out):
        assert e1 - s2 == overlap


def _words(text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """A toy tokenizer: one token per word, with offsets."""
    ids, offsets, pos = [], [], 0
    for word in text.split(" "):
        ids.append(len(word))
        offsets.append((pos, pos + len(word)))
        pos += len(word) + 1
    return ids, offsets


def test_chunks_carry_specials_prompt_and_character_spans() -> None:
    prompt, text = "q: ", "aa bbb c dddd ee f"
    ids, offsets = _words(prompt + text)  # "q:" is token 0, in the prompt
    chunks = chunk_document(ids, offsets, prompt_chars=len(prompt), prefix=[101], suffix=[102], max_length=5,
                            options=ChunkingOptions())  # room: 5 - 2 specials - 1 prompt token = 2
    assert [c.ids for c in chunks] == [[101, 2, 2, 3, 102], [101, 2, 1, 4, 102], [101, 2, 2, 1, 102]]
    assert [text[c.start:c.end] for c in chunks] == ["aa bbb", "c dddd", "ee f"]
    with pytest.raises(InvalidInput, match="at most 2"):
        chunk_document(ids, offsets, prompt_chars=len(prompt), prefix=[101], suffix=[102], max_length=5,
                       options=ChunkingOptions(size=3))
    with pytest.raises(InvalidInput, match="no room"):
        chunk_document(ids, offsets, prompt_chars=len(prompt), prefix=[101], suffix=[102], max_length=3,
                       options=ChunkingOptions())
    overlapping = chunk_document(ids, offsets, prompt_chars=0, prefix=[], suffix=[9], max_length=4,
                                 options=ChunkingOptions(size=3, overlap=1))
    assert [(prompt + text)[c.start:c.end] for c in overlapping] == ["q: aa bbb", "bbb c dddd", "dddd ee f"]


def test_weighted_mean() -> None:
    v = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(weighted_mean(v, [3, 1], normalize=False), [0.75, 0.25])
    out = weighted_mean(v, [3, 1], normalize=True)
    np.testing.assert_allclose(out, np.array([3, 1]) / np.sqrt(10), rtol=1e-6)
    assert out.dtype == np.float32
