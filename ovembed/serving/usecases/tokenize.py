"""The tokenize use case behind OVMS's ``/v3/tokenize``."""

from __future__ import annotations

from dataclasses import dataclass

from ovembed.serving.context import RequestContext
from ovembed.serving.engine.interface import Registry
from ovembed.serving.usecases import models


@dataclass(frozen=True)
class TokenizeRequest:
    model: str
    texts: tuple[str, ...]
    max_length: int | None = None
    pad_to_max_length: bool = False
    add_special_tokens: bool = True
    padding_side: str = "right"


async def tokenize(registry: Registry, ctx: RequestContext, req: TokenizeRequest) -> list[list[int]]:
    """Token ids per text, as the model sees them."""
    servable, _ = models.servable(registry, ctx, req.model)
    return servable.tokenize(list(req.texts), add_special_tokens=req.add_special_tokens,
                             max_length=req.max_length, pad_to_max_length=req.pad_to_max_length,
                             padding_side=req.padding_side)
