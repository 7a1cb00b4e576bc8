"""The embed/tokenize use cases over the fake registry: resolution, checks, shaping, cancellation."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ovembed.errors import ClientGone, InvalidInput, ModelNotFound, ModelNotReady
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases import models
from ovembed.serving.usecases.embed import EmbedRequest, embed
from ovembed.serving.usecases.tokenize import TokenizeRequest, tokenize
from tests.serving.fakes import FakeRegistry, FakeServable, expected_vector, text_ids


def _registry() -> tuple[FakeRegistry, FakeServable]:
    fake = FakeServable("m", dimensions=16, max_length=8)
    return FakeRegistry(fake, loading=["slow"], failed={"broken": "bad file"}), fake


def test_embed_resolves_embeds_and_notes_the_model() -> None:
    registry, fake = _registry()
    ctx = RequestContext("rid")
    result = asyncio.run(embed(registry, ctx, EmbedRequest("m", ["a b", "c"])))
    assert ctx.model == "m" and result.info.name == "m" and result.version == 1
    assert result.token_counts == [4, 3] and result.prompt_tokens == 7
    np.testing.assert_allclose(result.vectors[0], expected_vector(text_ids("a b"), 16, True), atol=1e-6)
    assert fake.calls == [(["a b", "c"], None)]


def test_dimensions_keep_the_first_columns_renormalised() -> None:
    registry, _ = _registry()
    result = asyncio.run(embed(registry, RequestContext("r"), EmbedRequest("m", ["x"], dimensions=4)))
    full = expected_vector(text_ids("x"), 16, True)[:4]
    assert result.vectors.shape == (1, 4) and result.vectors.flags.c_contiguous
    np.testing.assert_allclose(result.vectors[0], full / np.linalg.norm(full), atol=1e-6)
    with pytest.raises(InvalidInput, match="'dimensions' must be at most 16"):
        asyncio.run(embed(registry, RequestContext("r"), EmbedRequest("m", ["x"], dimensions=17)))


def test_empty_inputs_never_reach_the_engine() -> None:
    registry, fake = _registry()
    result = asyncio.run(embed(registry, RequestContext("r"), EmbedRequest("m", [], dimensions=3)))
    assert result.vectors.shape == (0, 3) and result.token_counts == [] and fake.calls == []


@pytest.mark.parametrize(("name", "version", "error", "noted"), [
    ("nope", None, ModelNotFound, None),  # unknown names never become metric labels
    ("m", "2", ModelNotFound, "m"),
    ("slow", None, ModelNotReady, "slow"),
    ("broken", None, ModelNotReady, "broken"),
])
def test_resolution_errors(name: str, version: str | None, error: type[Exception], noted: str | None) -> None:
    registry, fake = _registry()
    ctx = RequestContext("r")
    with pytest.raises(error):
        asyncio.run(embed(registry, ctx, EmbedRequest(name, ["x"], version=version)))
    assert ctx.model == noted and fake.calls == []


def test_version_one_and_unset_are_the_served_version() -> None:
    registry, _ = _registry()
    for version in (None, "", "1"):
        assert models.status(registry, RequestContext("r"), "m", version).version == 1


def test_client_gone_cancels_the_engine_work() -> None:
    registry, fake = _registry()
    fake.block = asyncio.Event()

    async def main() -> None:
        gone = asyncio.Event()

        async def client_gone() -> None:
            await gone.wait()

        ctx = RequestContext("r", client_gone=client_gone)
        task = asyncio.ensure_future(embed(registry, ctx, EmbedRequest("m", ["x"])))
        await fake.started.wait()
        gone.set()
        with pytest.raises(ClientGone):
            await task

    asyncio.run(main())
    assert fake.cancelled


def test_tokenize_passes_every_option() -> None:
    registry, fake = _registry()
    ctx = RequestContext("r")
    ids = asyncio.run(tokenize(registry, ctx, TokenizeRequest("m", ("a b",), max_length=5, pad_to_max_length=True,
                                                             padding_side="left")))
    assert ids == [[0, *text_ids("a b")]] and ctx.model == "m"
    assert fake.tokenize_calls == [{"texts": ["a b"], "add_special_tokens": True, "max_length": 5,
                                    "pad_to_max_length": True, "padding_side": "left"}]
