"""The async load generator: sends documents to an embeddings endpoint and times each request.

The API is recognised from the URL path: ``.../embeddings`` is OpenAI's (ovembed's /v3 and /v1,
OVMS, TEI, Infinity, vLLM), ``.../api/embed`` is Ollama's. Request bodies are serialised before
the clock starts; a response is validated (one vector per input, every vector the same length,
base64 decoded as little-endian float32) after its latency has been taken.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from ovembed.benchmark.transport import Http11Client, Response, TransportError, TransportTimeout
from ovembed.config import BenchmarkConfig
from ovembed.errors import ConfigError, OvembedError

_MESSAGE_CHARS = 200  # how much of a server's error message a BenchmarkError quotes


class Api(str, enum.Enum):
    OPENAI = "openai"
    OLLAMA = "ollama"
    RERANK = "rerank"  # Cohere/OVMS shape: /v3/rerank, /v1/rerank, /v2/rerank
    TEI_RERANK = "tei-rerank"  # TEI's /rerank
    TEI_SPARSE = "tei-sparse"  # TEI's /embed_sparse (ovembed: /embed_sparse, /v3/embed_sparse)

    def __str__(self) -> str:
        return self.value


class BenchmarkError(OvembedError):
    """The benchmark cannot run: server unreachable, wrong endpoint, rejected credentials."""


@dataclass(frozen=True)
class RequestRecord:
    """One timed request. ``error`` is None on success, else a failure kind such as 'HTTP 429'."""

    index: int  # position of the request in send order (documents[index * batch_size:...])
    start: float  # perf_counter seconds, relative to the start of the measured run
    latency: float  # seconds from sending the request to having read the whole response
    documents: int
    status: int  # HTTP status; 0 when no response arrived
    tokens: int | None = None  # as reported by the server (usage.prompt_tokens / prompt_eval_count)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class LoadResult:
    api: Api
    records: list[RequestRecord]
    wall_time: float  # seconds from the first request sent to the last response read
    dimensions: int | None  # embedding size seen in the responses


class _BadResponse(Exception):
    pass


def detect_api(url: str) -> Api:
    """Which wire format ``url`` speaks, from its path."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--api_url must be an http(s) URL, got {url!r}")
    path = parts.path.rstrip("/")
    if path.endswith("/embed_sparse"):
        return Api.TEI_SPARSE
    if path == "/rerank":
        return Api.TEI_RERANK
    if path.endswith("/rerank"):
        return Api.RERANK
    if path.endswith("/api/embed"):
        return Api.OLLAMA
    if path.endswith("/embeddings") and not path.endswith("/api/embeddings"):
        return Api.OPENAI
    raise ConfigError(
        f"--api_url: cannot tell the API from {url!r}: expected a path ending in /embeddings (OpenAI), "
        "/api/embed (Ollama), /rerank (Cohere/OVMS /v3/rerank, TEI /rerank) or /embed_sparse (TEI)")


# The query of every rerank request: documents are scored against it (its length shapes each pair).
RERANK_QUERY = "what does the document say about the main topic of this benchmark text"


def request_body(api: Api, model: str, texts: Sequence[str], encoding_format: str) -> bytes:
    if api is Api.RERANK:
        return orjson.dumps({"model": model, "query": RERANK_QUERY, "documents": list(texts)})
    if api is Api.TEI_RERANK:
        # truncate: TEI (and ovembed's /rerank) refuse a query over half a small model's window without it
        return orjson.dumps({"model": model, "query": RERANK_QUERY, "texts": list(texts), "truncate": True})
    if api is Api.TEI_SPARSE:
        return orjson.dumps({"model": model, "inputs": list(texts)})
    payload: dict[str, Any] = {"model": model, "input": list(texts)}
    if api is Api.OPENAI:
        payload["encoding_format"] = encoding_format
    return orjson.dumps(payload)


def parse_response(api: Api, body: bytes, expected: int) -> tuple[int | None, int]:
    """(prompt tokens or None, dimensions) of a successful response; _BadResponse if malformed.

    A rerank response has one score per document: its "dimensions" are 1; a sparse one's are the most
    terms one vector has.
    """
    if api in (Api.RERANK, Api.TEI_RERANK):
        return _parse_rerank(api, body, expected)
    if api is Api.TEI_SPARSE:
        return _parse_sparse(body, expected)
    try:
        data = orjson.loads(body)
        if api is Api.OPENAI:
            items = data["data"]
            vectors = [item["embedding"] for item in items]
            if sorted(item["index"] for item in items) != list(range(len(items))):
                raise _BadResponse("indices are not 0..n-1")
            usage = data.get("usage") or {}
            tokens = usage.get("prompt_tokens")
        else:
            vectors = data["embeddings"]
            tokens = data.get("prompt_eval_count")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise _BadResponse(f"unexpected response shape: {exc!r}") from exc
    if len(vectors) != expected:
        raise _BadResponse(f"{len(vectors)} embeddings for {expected} inputs")
    sizes = {_dimensions(vector) for vector in vectors}
    if len(sizes) != 1 or 0 in sizes:
        raise _BadResponse(f"embedding sizes {sorted(sizes)}")
    return (tokens if isinstance(tokens, int) else None), sizes.pop()


def _parse_sparse(body: bytes, expected: int) -> tuple[int | None, int]:
    try:
        vectors = orjson.loads(body)
        terms = [len(vector) for vector in vectors]
        ok = all(isinstance(p["index"], int) and isinstance(p["value"], (int, float)) for v in vectors for p in v)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise _BadResponse(f"unexpected response shape: {exc!r}") from exc
    if len(terms) != expected:
        raise _BadResponse(f"{len(terms)} sparse vectors for {expected} inputs")
    if not ok:
        raise _BadResponse("a term is not {index: int, value: number}")
    return None, max(terms, default=0) or 1


def _parse_rerank(api: Api, body: bytes, expected: int) -> tuple[int | None, int]:
    try:
        data = orjson.loads(body)
        results = data["results"] if api is Api.RERANK else data
        indexes = sorted(int(r["index"]) for r in results)
        scores = [r["relevance_score"] if api is Api.RERANK else r["score"] for r in results]
        tokens = (data.get("usage") or {}).get("prompt_tokens") if api is Api.RERANK else None
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise _BadResponse(f"unexpected response shape: {exc!r}") from exc
    if indexes != list(range(expected)):
        raise _BadResponse(f"{len(indexes)} results for {expected} documents")
    if not all(isinstance(x, (int, float)) for x in scores):
        raise _BadResponse("a score is not a number")
    return (tokens if isinstance(tokens, int) else None), 1


def _dimensions(vector: Any) -> int:
    if isinstance(vector, str):  # base64 of little-endian float32
        try:
            raw = base64.b64decode(vector, validate=True)
        except ValueError as exc:
            raise _BadResponse("invalid base64 embedding") from exc
        if len(raw) % 4:
            raise _BadResponse("base64 embedding is not a whole number of float32")
        return len(raw) // 4
    if isinstance(vector, list) and all(isinstance(x, (int, float)) for x in vector[:8]):
        return len(vector)
    raise _BadResponse("an embedding is neither a list of numbers nor base64")


def _error_message(response: Response) -> str:
    """The server's own error message (OpenAI envelope, Ollama's {"error": ...}) or the body."""
    try:
        data = orjson.loads(response.content)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message", error) if isinstance(error, dict) else error
        text = str(message)
    except (orjson.JSONDecodeError, AttributeError):
        text = response.text
    text = " ".join(text.split())
    return text[:_MESSAGE_CHARS] or response.reason


class _Sender:
    """Sends pre-serialised bodies on one client and turns each exchange into a record."""

    def __init__(self, client: Http11Client, api: Api) -> None:
        self._client = client
        self._url = client.url
        self._api = api
        self.dimensions: int | None = None

    async def exchange(self, body: bytes) -> tuple[Response, float]:
        start = time.perf_counter()
        response = await self._client.post(body)
        return response, time.perf_counter() - start

    async def send(self, index: int, body: bytes, documents: int,
                   origin: float) -> RequestRecord:
        start = time.perf_counter()
        try:
            response, latency = await self.exchange(body)
        except TransportTimeout:
            return RequestRecord(index, start - origin, time.perf_counter() - start, documents,
                                 0, error="timeout")
        except TransportError:
            return RequestRecord(index, start - origin, time.perf_counter() - start, documents,
                                 0, error="connection error")
        status = response.status
        error: str | None = None
        tokens: int | None = None
        if status != 200:
            error = f"HTTP {status}"
        else:
            try:
                tokens, dimensions = parse_response(self._api, response.content, documents)
            except _BadResponse:
                error = "invalid response"
            else:
                if self._api is Api.TEI_SPARSE:  # terms per vector vary: report the most seen
                    self.dimensions = max(self.dimensions or 0, dimensions)
                elif self.dimensions is None:
                    self.dimensions = dimensions
                elif dimensions != self.dimensions:
                    error = "invalid response"
        return RequestRecord(index, start - origin, latency, documents, status, tokens, error)

    async def preflight(self, body: bytes, documents: int) -> None:
        """One unmeasured request: fail fast and clearly on a wrong URL, model or key.

        Transient answers (408, 429, 5xx) are not fatal: the measured run will count them.
        """
        try:
            response, _ = await self.exchange(body)
        except TransportTimeout as exc:
            raise BenchmarkError(f"{self._url}: {exc}") from exc
        except TransportError as exc:
            raise BenchmarkError(f"cannot reach {self._url}: {exc}") from exc
        status = response.status
        if 400 <= status < 500 and status not in (408, 429):
            raise BenchmarkError(f"{self._url} answered {status}: {_error_message(response)}")
        if status == 200:
            try:
                parse_response(self._api, response.content, documents)
            except _BadResponse as exc:
                raise BenchmarkError(
                    f"{self._url} does not answer like an {self._api} "
                    f"{'endpoint' if self._api in (Api.RERANK, Api.TEI_RERANK) else 'embeddings endpoint'}: {exc}"
                ) from exc


async def run_load(cfg: BenchmarkConfig, documents: Sequence[str], *,
                   progress: Callable[[int], object] | None = None) -> LoadResult:
    """Send ``documents`` in requests of ``cfg.batch_size`` inputs and time every request.

    ``cfg.concurrency`` requests are in flight at most; with a finite ``cfg.request_rate`` new
    requests arrive as a Poisson process of that rate (seeded by ``cfg.seed``). ``cfg.warmup``
    unmeasured requests go first (the first batch), and raise :class:`BenchmarkError` when the
    server cannot be used at all. ``progress`` is called with 0 when the measured run starts,
    then with each finished request's number of documents.
    """
    if not documents:
        raise ConfigError("no documents to send")
    api = detect_api(cfg.api_url)
    size = cfg.batch_size
    batches = [documents[i:i + size] for i in range(0, len(documents), size)]
    bodies = [request_body(api, cfg.model, batch, cfg.encoding_format) for batch in batches]
    headers = {"content-type": "application/json", "accept": "application/json"}
    if cfg.api_key:
        headers["authorization"] = f"Bearer {cfg.api_key}"
    async with Http11Client(cfg.api_url, headers=headers, timeout=cfg.timeout) as client:
        sender = _Sender(client, api)
        for _ in range(cfg.warmup):
            await sender.preflight(bodies[0], len(batches[0]))
        jobs = [(i, body, len(batch))
                for i, (body, batch) in enumerate(zip(bodies, batches, strict=True))]
        records: list[RequestRecord] = []
        if progress is not None:
            progress(0)
        origin = time.perf_counter()

        async def one(index: int, body: bytes, count: int) -> None:
            record = await sender.send(index, body, count, origin)
            records.append(record)
            if progress is not None:
                progress(count)

        if cfg.request_rate == float("inf"):
            await _closed_loop(jobs, cfg.concurrency, one)
        else:
            await _poisson(jobs, cfg.concurrency, cfg.request_rate, random.Random(cfg.seed), one)
        wall_time = time.perf_counter() - origin
    records.sort(key=lambda record: record.index)
    return LoadResult(api, records, wall_time, sender.dimensions)


_Job = tuple[int, bytes, int]  # (request index, body, documents in it)


async def _closed_loop(jobs: list[_Job], concurrency: int,
                       one: Callable[[int, bytes, int], Awaitable[None]]) -> None:
    """``concurrency`` workers, each sending its next request as soon as the last one returns."""
    pending = iter(jobs)

    async def worker() -> None:
        for job in pending:
            await one(*job)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(jobs)))))


async def _poisson(jobs: list[_Job], concurrency: int, rate: float,
                   rng: random.Random, one: Callable[[int, bytes, int], Awaitable[None]]) -> None:
    """Requests arrive with exponential gaps of mean 1/rate; at most ``concurrency`` in flight."""
    slots = asyncio.Semaphore(concurrency)
    tasks: list[asyncio.Task[None]] = []

    async def guarded(job: _Job) -> None:
        try:
            await one(*job)
        finally:
            slots.release()

    loop = asyncio.get_running_loop()
    due = loop.time()
    for job in jobs:
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        tasks.append(asyncio.create_task(guarded(job)))
        due += rng.expovariate(rate)
    await asyncio.gather(*tasks)


class ProgressBar:
    """A tqdm bar on stderr counting documents, drawn from the first call on (so that nothing
    is drawn when the run stops before it starts)."""

    def __init__(self, total: int, *, enabled: bool = True) -> None:
        self._total = total
        self._enabled = enabled
        self._bar: Any = None

    def __call__(self, documents: int) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=self._total, unit="doc", file=sys.stderr,
                             dynamic_ncols=True, leave=False)
        self._bar.update(documents)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()
