"""The tokenize use cases behind OVMS's ``/v3/tokenize`` and vLLM's ``/tokenize`` and ``/detokenize``.

Bounded by configuration, not by the request: padding goes to at most the model's maximum
length, and a request whose token ids would exceed ``max_tokens`` (``--max_request_tokens``)
is refused with 413, before anything is padded when padding alone would exceed it. Large
requests are tokenized in a worker thread (the tokenizer releases the GIL), so the event loop
keeps answering health checks meanwhile.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ovembed.errors import InvalidInput, PayloadTooLarge
from ovembed.serving.api import Registry
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases import models


@dataclass(frozen=True)
class TokenizeRequest:
    model: str
    texts: tuple[str, ...]
    max_length: int | None = None
    pad_to_max_length: bool = False
    add_special_tokens: bool = True
    padding_side: str = "right"
    max_tokens: int = 1 << 20  # --max_request_tokens


# Tokenizing more text than this runs in a worker thread; below it the thread hop costs more.
_INLINE_CHARS = 16_384


async def tokenize(registry: Registry, ctx: RequestContext, req: TokenizeRequest) -> list[list[int]]:
    """Token ids per text, as the model sees them."""
    servable, _ = await models.servable(registry, ctx, req.model)
    limit = servable.info.max_length
    if req.pad_to_max_length:
        width = req.max_length or limit
        if width > limit:
            raise InvalidInput(f"'max_length' {width} is larger than the model's maximum length {limit}: "
                               "padding goes at most that far", param="max_length")
        _check_tokens(width * len(req.texts), req.max_tokens)

    def run() -> list[list[int]]:
        return servable.tokenize(list(req.texts), add_special_tokens=req.add_special_tokens,
                                 max_length=req.max_length, pad_to_max_length=req.pad_to_max_length,
                                 padding_side=req.padding_side)

    if sum(len(t) for t in req.texts) > _INLINE_CHARS:
        ids = await asyncio.to_thread(run)
    else:
        ids = run()
    _check_tokens(sum(len(i) for i in ids), req.max_tokens)
    return ids


def _check_tokens(count: int, limit: int) -> None:
    if count > limit:
        raise PayloadTooLarge(f"Too many tokens: {count} in one request, the limit is {limit} "
                              "(--max_request_tokens)", param="text")


def only_model(registry: Registry) -> str:
    """The name of the one model served (vLLM's requests may name none)."""
    names = [info.name for info in models.served_infos(registry)]
    if len(names) == 1:
        return names[0]
    if not names:
        raise InvalidInput("No model is being served", param="model")
    raise InvalidInput(f"Several models are served ({', '.join(sorted(names))}): name one in 'model'", param="model")


async def tokenize_prompt(registry: Registry, ctx: RequestContext, model: str | None, prompt: str, *,
                          add_special_tokens: bool = True, max_tokens: int = 1 << 20) -> tuple[list[int], int]:
    """vLLM's /tokenize: (ids, the model's maximum length)."""
    servable, _ = await models.servable(registry, ctx, model if model is not None else only_model(registry))
    if len(prompt) > _INLINE_CHARS:
        ids = (await asyncio.to_thread(servable.tokenize, [prompt], add_special_tokens=add_special_tokens))[0]
    else:
        ids = servable.tokenize([prompt], add_special_tokens=add_special_tokens)[0]
    _check_tokens(len(ids), max_tokens)
    return ids, servable.info.max_length


async def detokenize(registry: Registry, ctx: RequestContext, model: str | None, ids: tuple[int, ...]) -> str:
    """vLLM's /detokenize: the text of ``ids`` (special tokens skipped)."""
    servable, _ = await models.servable(registry, ctx, model if model is not None else only_model(registry))
    return servable.detokenize(ids)
