"""Ollama-compatible routes: ``/api/embed``, legacy ``/api/embeddings``, tags, version, ``/``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ovembed import __version__
from ovembed.errors import InputTooLong, InvalidInput, ModelNotFound
from ovembed.serving.engine.interface import EmbedResult, Servable
from ovembed.serving.http.responses import JSONResponse
from ovembed.serving.http.routes import deps
from ovembed.serving.http.routes.openai import CLIENT_CLOSED
from ovembed.serving.wire import fields, ollama, vectors

_DEFAULT_TAG = ":latest"


def _servable(request: Request, name: str) -> Servable:
    """Ollama clients may say ``name:latest`` for a model served as ``name``."""
    try:
        return deps.servable(request, name)
    except ModelNotFound:
        if not name.endswith(_DEFAULT_TAG):
            raise
    return deps.servable(request, name[: -len(_DEFAULT_TAG)])


async def _embed(request: Request, servable: Servable, texts: list[str],
                 truncate: bool) -> EmbedResult | None:
    try:
        return await deps.unless_disconnected(request, servable.embed(texts, truncate=truncate))
    except InputTooLong:
        raise InvalidInput(ollama.CONTEXT_LENGTH_ERROR, param="input") from None


async def embed(request: Request) -> Response:
    req = ollama.parse_embed_request(await deps.json_body(request))
    fields.check_count(len(req.input), deps.config(request).max_inputs)
    servable = _servable(request, req.model)
    info = servable.info
    vectors.check_dimensions(req.dimensions, info)
    if not req.input:
        return JSONResponse(ollama.empty_embed_response(req.model))
    result = await _embed(request, servable, list(req.input), req.truncate)
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    vecs = vectors.select_dimensions(result.embeddings, req.dimensions, normalize=info.normalize)
    content = ollama.embed_response(req.model, vecs, result.prompt_tokens, deps.elapsed_ns(request))
    return JSONResponse(content)


async def legacy_embeddings(request: Request) -> Response:
    req = ollama.parse_legacy_request(await deps.json_body(request))
    servable = _servable(request, req.model)
    if not req.prompt:
        return JSONResponse(ollama.legacy_response(None))
    result = await _embed(request, servable, [req.prompt], truncate=True)
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    vecs = vectors.select_dimensions(result.embeddings, None, normalize=servable.info.normalize)
    return JSONResponse(ollama.legacy_response(vecs[0]))


async def tags(request: Request) -> Response:
    infos = [servable.info for servable in deps.registry(request).available()]
    return JSONResponse(ollama.tags_response(infos))


async def version(request: Request) -> Response:
    return JSONResponse({"version": __version__})


async def root(request: Request) -> Response:
    return PlainTextResponse("ovembed is running")


def routes() -> list[BaseRoute]:
    return [
        Route("/", root, methods=["GET"]),
        Route("/api/embed", embed, methods=["POST"]),
        Route("/api/embeddings", legacy_embeddings, methods=["POST"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/version", version, methods=["GET"]),
    ]
