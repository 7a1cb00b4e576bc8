"""Query expansion in the token servable (fake per-token engine of test_token_embed_routes): queries padded with
the expansion token to the length (marker and special tokens included), cut to it under 'fixed' only;
documents untouched; the record section read back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ovembed.config import Pooling, Task
from ovembed.serving.api import ModelInfo
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.batching.policy import BatchPolicy
from ovembed.serving.tasks.token_embed import QueryExpansion, TokenEmbedServable, TokenSettings
from ovembed.serving.tasks.tokenizer import ServingTokenizer
from tests.serving.http.test_token_embed_routes import IDS, MAX_LEN, SETTINGS, TABLE, TokenEngine, _tokenizer_json

MASK = IDS["c"]  # stands in for [MASK]


def _run(strategy: str, texts: list[str], kind: str) -> list[np.ndarray]:
    async def run() -> list[np.ndarray]:
        info = ModelInfo(name="colbert", dimensions=4, max_length=MAX_LEN - 1, pooling=Pooling.CLS, normalize=True,
                         truncate=False, device="CPU", precision="fp32", created=0, task=Task.TOKEN_EMBED)
        batcher = Batcher(TokenEngine(), BatchPolicy(max_batch_tokens=4096), max_queue=64, name="colbert")
        settings = TokenSettings(SETTINGS.query_marker_id, SETTINGS.document_marker_id, SETTINGS.skiplist_ids,
                                 QueryExpansion(strategy, 8, MASK))
        servable = TokenEmbedServable(info, ServingTokenizer(_tokenizer_json(), max_length=MAX_LEN - 1), batcher,
                                      settings=settings)
        result = await servable.embed_tokens(texts, kind=kind)  # type: ignore[arg-type]
        await batcher.stop()
        return result.vectors

    return asyncio.run(run())


def _ids(*words: str) -> list[int]:
    return [IDS[w] for w in words]


@pytest.mark.parametrize("strategy", ["fixed", "min"])
def test_short_queries_are_padded_with_the_expansion_token(strategy: str) -> None:
    got = _run(strategy, ["paris is nice"], "query")[0]
    want = [*_ids("[CLS]", "[Q]", "paris", "is", "nice", "[SEP]"), MASK, MASK]
    np.testing.assert_allclose(got, TABLE[want], atol=1e-6)


def test_fixed_cuts_long_queries_min_keeps_them() -> None:
    long = "a b c a b c a b"
    fixed = _run("fixed", [long], "query")[0]
    np.testing.assert_allclose(fixed, TABLE[_ids("[CLS]", "[Q]", "a", "b", "c", "a", "b", "[SEP]")], atol=1e-6)
    assert len(_run("min", [long], "query")[0]) == 11  # [CLS] [Q] 8 words [SEP]


def test_documents_are_not_expanded() -> None:
    got = _run("fixed", ["paris is nice"], "document")[0]
    np.testing.assert_allclose(got, TABLE[_ids("[CLS]", "[D]", "paris", "is", "nice", "[SEP]")], atol=1e-6)


def test_record_section() -> None:
    record = {"token_embed": {"query_marker_id": 3, "query_expansion": {"strategy": "fixed", "length": 32,
                                                                        "token_id": 103}}}
    assert TokenSettings.from_record(record).expansion == QueryExpansion("fixed", 32, 103)
    assert TokenSettings.from_record({"token_embed": {"query_expansion": None}}).expansion is None
