"""Ollama-compatible routes: ``/api/embed``, legacy ``/api/embeddings``, tags, ps, version, ``/``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ovembed import __version__
from ovembed.errors import InputTooLong, InvalidInput
from ovembed.serving.api import Registry
from ovembed.serving.context import RequestContext
from ovembed.serving.http.responses import JSONResponse, json_response
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases import models
from ovembed.serving.usecases.embed import Embeddings, EmbedRequest, embed
from ovembed.serving.wire import fields, ollama

_DEFAULT_TAG = ":latest"


def _model_name(registry: Registry, name: str) -> str:
    """Ollama clients may say ``name:latest`` for a model served as ``name``."""
    if name.endswith(_DEFAULT_TAG) and name not in registry.names():
        return name[: -len(_DEFAULT_TAG)]
    return name


async def _embed(registry: Registry, ctx: RequestContext, req: EmbedRequest, keep_alive: float | None) -> Embeddings:
    try:
        result = await embed(registry, ctx, req)
    except InputTooLong:
        raise InvalidInput(ollama.CONTEXT_LENGTH_ERROR, param="input") from None
    if keep_alive is not None:  # after the request, as Ollama does (0: unload now)
        registry.keep_alive(req.model, keep_alive)
    return result


async def embed_texts(request: Request) -> Response:
    req = ollama.parse_embed_request(await deps.json_body(request))
    fields.check_count(len(req.input), deps.config(request).max_inputs)
    registry, ctx = deps.registry(request), deps.context(request)
    result = await _embed(registry, ctx, EmbedRequest(_model_name(registry, req.model), req.input,
                                                      truncate=req.truncate, dimensions=req.dimensions,
                                                      **req.retrieval.request_fields()), req.keep_alive)
    if not req.input:
        return JSONResponse(ollama.empty_embed_response(req.model))
    total_ns = int(ctx.elapsed() * 1e9)
    return await json_response(lambda: ollama.embed_response(req.model, result.vectors, result.prompt_tokens,
                                                             total_ns, result.chunks), items=result.vectors.size)


async def legacy_embeddings(request: Request) -> Response:
    req = ollama.parse_legacy_request(await deps.json_body(request))
    registry, ctx = deps.registry(request), deps.context(request)
    inputs = [req.prompt] if req.prompt else []
    result = await _embed(registry, ctx, EmbedRequest(_model_name(registry, req.model), inputs, truncate=True),
                          req.keep_alive)
    return JSONResponse(ollama.legacy_response(result.vectors[0] if req.prompt else None))


async def tags(request: Request) -> Response:
    infos = models.served_infos(deps.registry(request))  # idle-unloaded models too: they serve on demand
    return JSONResponse(ollama.tags_response(infos))


async def ps(request: Request) -> Response:
    infos = [servable.info for servable in deps.registry(request).available()]
    return JSONResponse(ollama.ps_response(infos))


async def version(request: Request) -> Response:
    return JSONResponse({"version": __version__})


async def root(request: Request) -> Response:
    return PlainTextResponse("ovembed is running")


def routes() -> list[BaseRoute]:
    return [
        Route("/", root, methods=["GET"]),
        Route("/api/embed", embed_texts, methods=["POST"]),
        Route("/api/embeddings", legacy_embeddings, methods=["POST"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/ps", ps, methods=["GET"]),
        Route("/api/version", version, methods=["GET"]),
    ]
