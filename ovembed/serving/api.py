"""The narrow interface between the front ends (REST, Ollama, gRPC) and the engine.

Front ends only see :class:`Registry` and :class:`Servable`; the OpenVINO engine implements
them, and tests use a deterministic fake. Keep this file free of heavy imports.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from ovembed.config import Pooling, Task
from ovembed.errors import InvalidInput, ModelNotReady
from ovembed.heads.muvera import MuveraParams
from ovembed.prompts import PromptSet
from ovembed.repository import ModelEntry

# A document as the batcher receives it: a list of ids (texts) or an int64 array (token ids).
TokenIds = Sequence[int] | np.ndarray

# The deadline of the request being handled, in time.monotonic() seconds (the event loop's clock), or
# None: set by the transports (``--request_timeout``, ``x-request-timeout``, the gRPC deadline) and
# read by the batcher, which drops work not started by then. A ContextVar, like the request id, so
# it follows the request through use cases and servables without being passed along.
DEADLINE: ContextVar[float | None] = ContextVar("ovembed_deadline", default=None)

TruncationDirection = Literal["left", "right"]  # which end of a text truncation cuts

# One request's inputs: texts, or pre-tokenized documents (token ids, no special tokens added).
Inputs = Sequence[str] | Sequence[Sequence[int]]


Combine = Literal["mean", "none"]
COMBINE_MODES: tuple[Combine, ...] = ("mean", "none")


@dataclass(frozen=True)
class ChunkingOptions:
    """A request's ``chunking`` object; ``size`` None means as large as the model allows."""

    size: int | None = None
    overlap: int = 0
    combine: Combine = "mean"
    max_chunks: int | None = None  # most chunks one input may need (the request's); more is a 413


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    bytes: int
    max_bytes: int


class ModelState(str, enum.Enum):
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNAVAILABLE = "UNAVAILABLE"  # failed to load (error in ModelStatus.error) or stopped
    UNLOADED = "UNLOADED"  # unloaded after idling (--idle_unload_seconds, keep_alive): the next request loads it


@dataclass(frozen=True)
class ModelStatus:
    state: ModelState
    error: str | None = None
    version: int = 1
    detail: str | None = None  # what a LOADING model is doing, e.g. "exporting from the Hub"

    @property
    def reason(self) -> str:
        """Why a model that is not AVAILABLE does not serve: what it is doing, or its error."""
        if self.state is ModelState.LOADING:
            return self.detail or "loading"
        if self.state is ModelState.UNLOADED:
            return self.detail or "unloaded while idle; the next request loads it"
        return self.error or "unavailable"


LOADING_RETRY_AFTER = 5  # seconds a client is asked to wait before asking a loading model again


def not_ready(name: str, status: ModelStatus) -> ModelNotReady:
    """The error for a configured model that cannot serve (the same words for every registry)."""
    if status.state is ModelState.LOADING:
        doing = f" ({status.detail})" if status.detail else ""
        return ModelNotReady(f"The model '{name}' is still loading{doing}", retry_after=LOADING_RETRY_AFTER)
    if status.state is ModelState.UNLOADED:
        return ModelNotReady(f"The model '{name}' was unloaded while idle; the next request loads it",
                             retry_after=LOADING_RETRY_AFTER)
    return ModelNotReady(f"The model '{name}' is not available: {status.error}")


@dataclass(frozen=True)
class SparseOptions:
    """Pruning of sparse vectors: the ``top_k`` heaviest weights above ``threshold``; None: the model's
    default (graph.pbtxt; out of the box every non-zero weight, as TEI)."""

    top_k: int | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is; shown by /v2/models/{name}, /v3/models and the logs."""

    name: str
    dimensions: int
    max_length: int
    pooling: Pooling
    normalize: bool
    truncate: bool  # default for requests that do not say
    device: str  # e.g. "CPU"
    precision: str  # e.g. "fp32", "int8"
    created: int  # unix time the model folder was written
    task: Task = Task.EMBEDDINGS
    endpoint: str = "/v3/embeddings"  # where this task is served (the hint of a wrong-task error)
    prompts: PromptSet = field(default_factory=PromptSet)  # recorded at export (+ --default_prompt_name)
    pruning: SparseOptions | None = None  # sparse models: the graph's default top_k / threshold
    matryoshka: tuple[int, ...] | None = None  # 'dimensions' allowed: () any, None none (ovembed.matryoshka)
    pool_prompt: bool = True  # False: the head pools no prompt token; the servable marks them (heads.embeddings)
    serves: tuple[Task, ...] = ()  # other tasks' requests the model answers (a token model: rerank by MaxSim)
    labels: tuple[str, ...] = ()  # classifiers: the label of each output column (id2label)
    muvera: MuveraParams | None = None  # token models: default MUVERA parameters (record token_embed.muvera)


@dataclass(frozen=True)
class EmbedOptions:
    """How a request wants its texts embedded (token-id documents take none of these)."""

    prompt: str = ""  # text put in front of every text input (already chosen by the use case)
    truncation_direction: TruncationDirection = "right"  # which end truncation cuts
    chunking: ChunkingOptions | None = None  # split long texts instead of truncating/rejecting
    max_tokens: int | None = None  # truncate to this many tokens (special tokens kept), not max_length
    add_special_tokens: bool = True  # False: the text's own tokens only (vLLM's add_special_tokens)


@dataclass(frozen=True)
class ChunkSpan:
    """Which input a result row belongs to and the characters of it that the row covers."""

    input_index: int
    start: int
    end: int


@dataclass
class Timings:
    """Seconds spent per phase for one request (TEI-style x-*-time headers)."""

    tokenization: float = 0.0
    queue: float = 0.0
    inference: float = 0.0


@dataclass
class EmbedResult:
    embeddings: np.ndarray  # float32 [n_inputs, dimensions], rows in input order
    token_counts: list[int]  # real tokens per input after truncation, special tokens included
    timings: Timings = field(default_factory=Timings)
    # chunking "none": one row per chunk, described here (rows then outnumber the inputs)
    chunks: list[ChunkSpan] | None = None

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


@dataclass
class RerankResult:
    """Scores of one query against each document, in document order."""

    scores: np.ndarray  # float32 [n_docs]: the activated score (sigmoid of the logit by default)
    raw_scores: np.ndarray  # float32 [n_docs]: the relevance logit
    token_counts: list[int]  # tokens the model ran per document, over all its (query, chunk) pairs
    chunk_counts: list[int]  # (query, chunk) pairs per document
    timings: Timings = field(default_factory=Timings)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


@dataclass(frozen=True)
class SparseVector:
    indices: np.ndarray  # int64, ascending vocabulary ids
    values: np.ndarray  # float32 weights (> 0), one per index


@dataclass
class SparseResult:
    vectors: list[SparseVector]  # one per input, in input order
    token_counts: list[int]
    timings: Timings = field(default_factory=Timings)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


DEFAULT_SPARSE = SparseOptions()

TokenKind = Literal["query", "document"]


@dataclass
class TokenResult:
    """One ``[n_tokens, dim]`` float32 array of L2-normalised token vectors per input (late interaction)."""

    vectors: list[np.ndarray]  # in input order; padding and the document skiplist excluded
    token_counts: list[int]  # tokens the model ran per input (marker and special tokens included)
    timings: Timings = field(default_factory=Timings)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


# One classification input: a text, or a pair of texts (premise, hypothesis) the model reads together.
ClassifyInput = str | tuple[str, str]


@dataclass
class ClassifyResult:
    """One row of label scores per input (sequence classification), in input order."""

    labels: tuple[str, ...]  # the model's labels, in column order (id2label)
    logits: np.ndarray  # float32 [n_inputs, n_labels]
    probs: np.ndarray  # float32 [n_inputs, n_labels]: softmax (single-label) or sigmoid (multi-label)
    token_counts: list[int]
    timings: Timings = field(default_factory=Timings)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


Output = Literal["dense", "sparse", "multivector"]  # what a multi-output (bge_m3) model gives per input
OUTPUTS: tuple[Output, ...] = ("dense", "sparse", "multivector")


@dataclass
class MultiResult:
    """The outputs asked of a multi-output model, each from the same inference; None for one not asked."""

    dense: np.ndarray | None  # float32 [n_inputs, dimensions], L2-normalised
    sparse: list[SparseVector] | None  # one per input: token ids and their weights
    multivector: list[np.ndarray] | None  # float32 [n_tokens, dim] per input, L2-normalised rows
    token_counts: list[int]
    timings: Timings = field(default_factory=Timings)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


@dataclass(frozen=True)
class RerankOptions:
    """How a rerank request treats long documents."""

    max_tokens_per_doc: int | None = None  # cut each document to this many tokens first (Cohere)
    truncate: bool = False  # one window per document instead of chunks (TEI's truncate)
    direction: TruncationDirection = "right"  # which end of a document truncation keeps
    truncate_query: bool = True  # False: a query over half the window is a 400 instead of being cut
    weights: tuple[float, float, float] | None = None  # bge_m3: dense, sparse, colbert (None: the model's default)
    instruction: str | None = None  # a decoder reranker's template instruction (None: the model's default)


DEFAULT_RERANK = RerankOptions()


class Servable(Protocol):
    """One loaded model: embeddings (``embed``), rerank (``rerank``) or sparse (``embed_sparse``), as
    ``info.task`` says.

    Calling the other task's method raises ``InvalidInput`` naming the model's task.
    """

    @property
    def info(self) -> ModelInfo: ...

    @property
    def queue_depth(self) -> int:
        """Documents waiting in the model's queue (not yet sent to the engine)."""
        ...

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None,
                    options: EmbedOptions | None = None) -> EmbedResult:
        """Embed texts or token-id documents.

        ``truncate=None`` uses the model's default; ``options`` adds a prompt, the truncation
        direction and chunking (texts only). Raises ``InputTooLong`` (truncate false and
        an input longer than ``info.max_length``), ``InvalidInput`` (e.g. token id out of the
        vocabulary), ``Overloaded`` (queue full). Cancelling the awaiting task drops the work.
        """
        ...

    async def rerank(self, query: str, documents: Sequence[str],
                     options: RerankOptions = DEFAULT_RERANK) -> RerankResult:
        """Score each document against the query.

        A pair longer than ``info.max_length`` is split into overlapping chunks that each carry
        the full query; a document scores its best chunk. Raises ``InvalidInput`` (more chunks
        than the model allows), ``Overloaded``; cancelling drops the work.
        """
        ...

    async def embed_sparse(self, inputs: Inputs, *, truncate: bool | None = None,
                           options: EmbedOptions | None = None,
                           pruning: SparseOptions = DEFAULT_SPARSE) -> SparseResult:
        """One pruned vocabulary-weight vector per input (SPLADE); errors as for ``embed``."""
        ...

    async def embed_tokens(self, inputs: Inputs, *, kind: TokenKind = "document", truncate: bool | None = None,
                           options: EmbedOptions | None = None) -> TokenResult:
        """One vector per token of each input (late interaction), as a query or a document; errors as for
        ``embed``."""
        ...

    async def classify(self, inputs: Sequence[ClassifyInput], *, truncate: bool | None = None,
                       direction: TruncationDirection = "right") -> ClassifyResult:
        """Label scores for each text or text pair (sequence classification); ``InputTooLong`` when an
        input is longer than ``info.max_length`` and ``truncate`` is false, else errors as for ``embed``."""
        ...

    async def embed_multi(self, inputs: Inputs, outputs: Sequence[Output], *, truncate: bool | None = None,
                          options: EmbedOptions | None = None,
                          pruning: SparseOptions = DEFAULT_SPARSE) -> MultiResult:
        """Several outputs of each input from one inference (a bge_m3 model); errors as for ``embed``."""
        ...

    def tokenize(self, texts: Sequence[str], *, add_special_tokens: bool = True,
                 max_length: int | None = None, pad_to_max_length: bool = False,
                 padding_side: str = "right") -> list[list[int]]:
        """Token ids as the model sees them (OVMS /v3/tokenize semantics)."""
        ...

    def detokenize(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """The text of ``ids`` (the tokenizer's decoder); ``InvalidInput`` for ids outside the vocabulary."""
        ...


def wrong_task(info: ModelInfo, wanted: str) -> InvalidInput:
    """The error for asking a model for another task than its own (the hint: ``info.endpoint``, which the
    model's task spec sets)."""
    task = info.task.value
    return InvalidInput(f"The model '{info.name}' is {_article(task)} {task} model, "
                        f"not {_article(wanted)} {wanted} model (use {info.endpoint})", param="model")


def wrong_output(info: ModelInfo, outputs: Sequence[str]) -> InvalidInput:
    """The error for asking a model of one output (any task but bge_m3) for several outputs (``output``)."""
    task = info.task.value
    return InvalidInput(f"The model '{info.name}' is {_article(task)} {task} model: 'output' ({', '.join(outputs)}) "
                        f"is for a bge_m3 model (use {info.endpoint})", param="output")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


class Registry(Protocol):
    """Every configured model and its state."""

    def get(self, name: str) -> Servable:
        """The servable; raises ``ModelNotFound`` (unknown) or ``ModelNotReady`` (loading/failed)."""
        ...

    def status(self, name: str) -> ModelStatus:
        """Raises ``ModelNotFound`` for unknown names."""
        ...

    def names(self) -> list[str]: ...

    def available(self) -> list[Servable]: ...

    def info(self, name: str) -> ModelInfo | None:
        """What the model was when it last loaded, also once idle-unloaded (None: never loaded)."""
        ...

    async def acquire(self, name: str) -> Servable:
        """:meth:`get` for a request that will use the model: marks it used (its idle timer restarts) and
        loads an idle-unloaded model, waiting for it up to ``--load_wait_seconds``; ``ModelNotReady``
        (503 with Retry-After) when it is still loading after that."""
        ...

    def keep_alive(self, name: str, seconds: float | None) -> None:
        """How long ``name`` stays loaded once idle, from now (Ollama's ``keep_alive``): 0 unloads it as soon
        as its requests in progress finish, a negative value never, None the configured idle timeout."""
        ...

    @property
    def ready(self) -> bool:
        """True when every configured model is AVAILABLE (OVMS) or UNLOADED (idle, served on demand); once
        the models configured at start have loaded, a model that a reload adds, or one loading again after
        an idle unload, is LOADING on its own without unreadying the server."""
        ...

    @property
    def settled(self) -> bool:
        """True once nothing configured is loading or being prepared (each model served or failed)."""
        ...

    # -- lifecycle (the app's lifespan) -------------------------------------------------

    async def start(self) -> None:
        """Begin loading the models in the background and return at once."""
        ...

    async def stop(self, timeout: float | None = None) -> None:
        """Stop every model, letting requests in progress finish within ``timeout`` seconds."""
        ...

    def observe_batches(self, factory: Callable[[str], BatchObserver]) -> None:
        """From now on, each model's batcher reports to ``factory(model_name)``."""
        ...

    def cache_stats(self) -> CacheStats | None:
        """The embedding cache's counters (``--cache_bytes``), or None when there is none."""
        ...

    # -- live reload ------------------------------------------------------------------

    @property
    def reloadable(self) -> bool:
        """Whether models can be added, replaced and removed while serving (entries/add/remove)."""
        ...

    def entries(self) -> list[ModelEntry]:
        """The configured models (config.json entries), in order."""
        ...

    async def add(self, entry: ModelEntry) -> None:
        """Load a new model, or a new version of one (swapped in once warm)."""
        ...

    async def remove(self, name: str) -> None:
        """Stop serving ``name`` once its requests in progress have finished."""
        ...


class Executor(Protocol):
    """What the batcher needs from an inference engine (OpenVINO, or a fake in tests)."""

    @property
    def slots(self) -> int:
        """Batches that may run at once (infer requests)."""
        ...

    @property
    def dimensions(self) -> int: ...

    @property
    def pad_lone(self) -> bool:
        """Whether a lone document is padded like a batch (measured at load: padding changes the input
        shape less often, which an executor may or may not run faster)."""
        ...

    def start(self, input_ids: np.ndarray, attention_mask: np.ndarray,
              on_done: Callable[[np.ndarray | BaseException], None]) -> None:
        """Start one batch; call ``on_done`` (from any thread) with the ``[batch, dims]`` output,
        valid only during the call, or with the exception."""
        ...


class BatchObserver(Protocol):
    """Hears about each batch (e.g. :class:`ovembed.serving.metrics.BatchMetrics`). Called on
    the event loop thread; must be quick and must not raise."""

    def batch_started(self, size: int, tokens: int, padded_tokens: int) -> None:
        """A batch of ``size`` documents went to the engine: ``tokens`` real tokens,
        ``padded_tokens`` = size x padded width (what the engine computes)."""
        ...

    def batch_finished(self, size: int, seconds: float, failed: bool) -> None:
        """The engine returned the batch after ``seconds`` (or failed)."""
        ...

    def refused_by_wait(self) -> None:
        """A request was refused (429) because its expected queue wait was over ``--max_queue_wait_seconds``."""
        ...

    def deadline_expired(self) -> None:
        """A request's deadline passed before its result was ready (504)."""
        ...
