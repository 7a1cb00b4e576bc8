"""The tiny models' tokenizers come out the same on every build, so their random models do too."""

from __future__ import annotations

import pytest

from tests.tiny_models import _train


@pytest.mark.parametrize(("kind", "specials"), [
    ("wordpiece", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]),
    ("unigram", ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]),
    ("bpe", ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]),
])
def test_tokenizer_builds_are_deterministic(kind: str, specials: list[str]) -> None:
    first, second = _train(kind, specials), _train(kind, specials)
    assert first.to_str() == second.to_str()
    assert [first.token_to_id(s) for s in specials] == list(range(len(specials)))
    text = "the quick brown fox visits paris"
    assert first.encode(text).ids == second.encode(text).ids
    assert first.token_to_id(first.id_to_token(7)) == 7
