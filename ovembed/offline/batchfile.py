"""``ovembed embed --batch_file``: OpenAI batch input JSONL in, OpenAI batch output JSONL out (vLLM run-batch).

Input line: ``{"custom_id", "method": "POST", "url", "body"}`` with ``url`` an embeddings path
(``/v1/embeddings``, ``/v3/embeddings``...) or a rerank path (``/v1/rerank``, ``/v3/rerank``...).
Output line, in input order: ``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
"error"}``. ``body`` is what the HTTP route answers, built by the same wire parser, use case and
renderer; a refused request gets its status, the OpenAI error envelope as ``body``, and
``error: {"code", "message"}``. Requests run concurrently on the engine; the output is appended line
by line, so a rerun after a kill continues after the last whole line.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ovembed.errors import InvalidInput, OvembedError, describe, public_message
from ovembed.offline.model import Model
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases.embed import EmbedRequest, embed
from ovembed.serving.usecases.rerank import rerank
from ovembed.serving.usecases.sparse import SparseRequest, embed_sparse
from ovembed.serving.wire import fields, openai
from ovembed.serving.wire import rerank as cohere
from ovembed.serving.wire import sparse as sparse_wire

WINDOW = 32  # requests in the engine at once
MAX_INPUTS = 1 << 16  # inputs per request: the server's --max_inputs guards a network service, not a file
EMBEDDINGS_PATHS = {f"{prefix}/embeddings" for prefix in ("/v1", "/v3", "/v3/v1", "/v1-openai")}
RERANK_PATHS = {"/v1/rerank", "/v2/rerank", "/v3/rerank", "/v3/v1/rerank", "/v3/v2/rerank"}


@dataclass(frozen=True)
class BatchResult:
    output: Path
    requests: int
    failed: int
    resumed: int
    seconds: float

    def summary(self) -> str:
        resumed = f" (resumed after {self.resumed})" if self.resumed else ""
        rate = (self.requests - self.resumed) / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.requests} batch requests{resumed}, {self.failed} failed, in {self.seconds:.1f} s: "
                f"{rate:.1f} requests/s -> {self.output}")


async def _respond(model: Model, url: str, body: fields.JsonObject, ctx: RequestContext) -> Any:
    """The route's body for ``url`` (the HTTP routes' parse -> use case -> render, without HTTP)."""
    registry = model.registry
    if url in EMBEDDINGS_PATHS:
        req = openai.parse_embeddings_request(body, max_inputs=MAX_INPUTS)
        extra = req.retrieval.request_fields()
        if req.encoding_format == "sparse":
            sparse = await embed_sparse(registry, ctx, SparseRequest(
                req.model, req.input, truncate=req.truncate, pruning=req.pruning, **extra))
            return sparse_wire.openai_response(sparse)
        result = await embed(registry, ctx, EmbedRequest(
            req.model, req.input, truncate=req.truncate, dimensions=req.dimensions, **extra))
        return openai.embeddings_response(result.info.name, result.vectors, result.prompt_tokens,
                                          req.encoding_format, result.chunks)
    if url in RERANK_PATHS:
        parsed = cohere.parse_rerank_request(body, max_documents=MAX_INPUTS)
        ranking = await rerank(registry, ctx, parsed.request)
        return cohere.rerank_response(parsed, ranking, ctx.request_id)
    raise InvalidInput(f"url '{url}' is not one ovembed runs in a batch (embeddings or rerank paths)", param="url")


async def _line(model: Model, custom_id: str, url: str, body: fields.JsonObject) -> bytes:
    ctx = RequestContext(f"ovembed-batch-{uuid.uuid4().hex}")
    out: dict[str, Any] = {"id": f"ovembed-{uuid.uuid4().hex}", "custom_id": custom_id}
    try:
        out["response"] = {"status_code": 200, "request_id": ctx.request_id,
                           "body": await _respond(model, url, body, ctx)}
        out["error"] = None
    except OvembedError as exc:
        kind = describe(exc)
        message = public_message(exc, ctx.request_id)
        param = exc.param if kind.status < 500 else None
        out["response"] = {"status_code": kind.status, "request_id": ctx.request_id,
                           "body": {"error": {"message": message, "type": kind.type, "param": param,
                                              "code": kind.code}}}
        out["error"] = {"code": kind.code or kind.type, "message": message}
    return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def _parse(raw: str, where: str) -> tuple[str, str, fields.JsonObject]:
    try:
        line = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(line, dict):
        raise InvalidInput(f"{where}: a batch request must be a JSON object")
    custom_id, method, url, body = (line.get(k) for k in ("custom_id", "method", "url", "body"))
    if not isinstance(custom_id, str) or not custom_id:
        raise InvalidInput(f"{where}: 'custom_id' must be a non-empty string")
    if method != "POST":
        raise InvalidInput(f"{where}: 'method' must be \"POST\", got {method!r}")
    if not isinstance(url, str) or not isinstance(body, dict):
        raise InvalidInput(f"{where}: 'url' must be a string and 'body' an object")
    return custom_id, url, body


def _resume(output: Path, overwrite: bool) -> list[str]:
    """The custom_ids already answered in ``output`` (a torn last line is cut off)."""
    if overwrite or not output.exists():
        output.write_bytes(b"")
        return []
    data = output.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with open(output, "r+b") as f:
            f.truncate(len(whole))
    return [json.loads(line)["custom_id"] for line in whole.splitlines()]


def run_batch_file(model: Model, batch_file: Path, output: Path, *, overwrite: bool = False) -> BatchResult:
    """Answer every request of ``batch_file`` into ``output``, continuing an unfinished run."""
    started = time.perf_counter()
    answered = _resume(output, overwrite)
    failed = count = 0
    pending: collections.deque[concurrent.futures.Future[bytes]] = collections.deque()
    try:
        source = open(batch_file, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise InvalidInput(f"{batch_file}: cannot read it ({exc.strerror or exc})") from None
    with source, open(output, "ab") as sink:
        def drain(keep: int) -> None:
            nonlocal failed
            while len(pending) > keep:
                line = pending.popleft().result()
                failed += b'"error":null' not in line
                sink.write(line)
                sink.flush()

        try:
            for number, raw in enumerate(source, start=1):
                if not raw.strip():
                    continue
                custom_id, url, body = _parse(raw, f"{batch_file} line {number}")
                if count < len(answered):
                    if answered[count] != custom_id:
                        raise InvalidInput(f"{output} answers '{answered[count]}' where {batch_file} line {number} "
                                           f"asks '{custom_id}': another batch file? rerun with --overwrite")
                    count += 1
                    continue
                count += 1
                pending.append(model.loop.submit(_line(model, custom_id, url, body)))
                drain(WINDOW)
            drain(0)
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{batch_file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        finally:
            for future in pending:
                future.cancel()
    return BatchResult(output, count, failed, len(answered), time.perf_counter() - started)
