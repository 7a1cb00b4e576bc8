"""The classify task (ClassificationCalculatorOV, ``ovembed export --task classify``): texts or text pairs ->
the model's batcher -> one score per label.

The IR is optimum's ``text-classification`` one; :mod:`ovembed.heads.classify` appends the head, which outputs
``[batch, 2 * labels]`` (logits, then softmax or sigmoid probabilities) and derives a pair's token types
in-graph, so the batcher feeds a classifier ids and mask like any other model. Labels, problem type and the
pair separator come from ovembed_model.json (``classify_head``). A pair is tokenized with the model's own
pair template (tokenizer.json); truncation cuts the longer side first, as transformers' ``longest_first``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import ServeConfig, Task
from ovembed.errors import ConfigError, InputTooLong, InvalidInput
from ovembed.graphs import CLASSIFY
from ovembed.heads.classify import ClassifyHead, add_classify_head
from ovembed.layout import TOKENIZER_JSON
from ovembed.serving.api import (
    ClassifyInput,
    ClassifyResult,
    ModelInfo,
    Timings,
    TokenIds,
    TruncationDirection,
)
from ovembed.serving.tasks.base import NO_DEPS, BaseServable, ServableDeps
from ovembed.serving.tasks.spec import LoadedModel, Prepared, Source, TaskSpec, resolve_max_length
from ovembed.serving.tasks.tokenizer import ServingTokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from ovembed.serving.batching.batcher import Batcher


class PairEncoder:
    """Text pairs -> ids with the model's pair template; thread-safe (configured once, never mutated)."""

    def __init__(self, tokenizer_json: str, *, max_length: int) -> None:
        from tokenizers import Tokenizer

        def make(direction: str | None) -> Tokenizer:
            tok = Tokenizer.from_str(tokenizer_json)
            tok.no_padding()
            if direction is None:
                tok.no_truncation()
            else:
                tok.enable_truncation(max_length, strategy="longest_first", direction=direction)
            return tok

        self.max_length = max_length
        self._plain, self._right, self._left = make(None), make("right"), make("left")

    def encode(self, pairs: Sequence[tuple[str, str]], indexes: Sequence[int], *, truncate: bool,
               direction: TruncationDirection) -> list[list[int]]:
        tok = (self._left if direction == "left" else self._right) if truncate else self._plain
        ids = [e.ids for e in tok.encode_batch_fast(list(pairs), add_special_tokens=True)]
        if not truncate:
            for i, doc in zip(indexes, ids, strict=True):
                if len(doc) > self.max_length:
                    raise InputTooLong(len(doc), self.max_length, index=i)
        return ids


class ClassifyServable(BaseServable):
    """One loaded classifier: ``classify`` (and ``tokenize``) for the front ends."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, pairs: PairEncoder, batcher: Batcher,
                 deps: ServableDeps = NO_DEPS) -> None:
        super().__init__(info, tokenizer, batcher, deps)
        self.pairs = pairs

    def _encode_all(self, inputs: Sequence[ClassifyInput], truncate: bool,
                    direction: TruncationDirection) -> list[TokenIds]:
        singles = [i for i, x in enumerate(inputs) if isinstance(x, str)]
        pairs = [i for i, x in enumerate(inputs) if not isinstance(x, str)]
        docs: list[TokenIds] = [[] for _ in inputs]
        if singles:
            encoded = self.tokenizer.encode_texts([inputs[i] for i in singles],  # type: ignore[misc]
                                                  truncate=truncate, direction=direction)
            for j, i in enumerate(singles):
                docs[i] = encoded[j]
        if pairs:
            for i in pairs:
                pair = inputs[i]
                if len(pair) != 2 or not all(isinstance(s, str) for s in pair):
                    raise InvalidInput(f"input[{i}] must be a text or a pair of texts", param="input")
            try:
                encoded = self.pairs.encode([inputs[i] for i in pairs], pairs,  # type: ignore[misc]
                                            truncate=truncate, direction=direction)
            except InputTooLong as exc:  # the index is within the pairs: name the request's own
                raise InputTooLong(exc.length, exc.maximum, index=exc.index) from None
            for j, i in enumerate(pairs):
                docs[i] = encoded[j]
        return docs

    async def classify(self, inputs: Sequence[ClassifyInput], *, truncate: bool | None = None,
                       direction: TruncationDirection = "right") -> ClassifyResult:
        labels = self.info.labels
        n = len(labels)
        if not inputs:
            empty = np.empty((0, n), dtype=np.float32)
            return ClassifyResult(labels, empty, empty.copy(), [])
        cut = self.info.truncate if truncate is None else truncate
        texts = [t for x in inputs for t in ((x,) if isinstance(x, str) else x)]
        with self.in_progress():
            started = time.perf_counter()
            docs = await self._off_loop(texts, self._encode_all, inputs, cut, direction)
            tokenized = time.perf_counter()
            result = await self.batcher.submit(docs)
        rows = result.embeddings  # [n_inputs, 2 * labels]
        timings = Timings(tokenization=tokenized - started, queue=result.queue_seconds,
                          inference=result.inference_seconds)
        return ClassifyResult(labels, np.ascontiguousarray(rows[:, :n]), np.ascontiguousarray(rows[:, n:]),
                              [len(d) for d in docs], timings)


def served_head(record: dict[str, Any]) -> ClassifyHead:
    try:
        return ClassifyHead.from_record(record.get("classify_head"))
    except ValueError as exc:
        raise ConfigError(f"classify head: {exc}") from None


class ClassifySpec(TaskSpec, task=Task.CLASSIFY, calculator=CLASSIFY, endpoint="/predict or /classify",
                   label="classify "):

    def prepare(self, source: Source) -> Prepared:
        head = served_head(source.record)
        max_length = resolve_max_length(source.model_dir, source.record)
        tokenizer_json = (source.tokenizer_dir / TOKENIZER_JSON).read_text(encoding="utf-8")
        return Prepared(source.graph, max_length, lambda model: add_classify_head(model, head),
                        {"head": "classify", **head.describe()}, ((1, 8), (4, min(128, max_length))),
                        extras={"head": head, "pairs": PairEncoder(tokenizer_json, max_length=max_length)})

    def info(self, source: Source, prepared: Prepared, *, dimensions: int, device: str, precision: str,
             created: int) -> ModelInfo:
        head: ClassifyHead = prepared.extras["head"]
        base = super().info(source, prepared, dimensions=len(head.labels), device=device, precision=precision,
                            created=created)
        return replace(base, labels=head.labels, truncate=prepared.graph.truncate)

    def ready_details(self, info: ModelInfo, prepared: Prepared, cfg: ServeConfig) -> str:
        head: ClassifyHead = prepared.extras["head"]
        return (f"window {info.max_length} tokens, {len(head.labels)} labels ({', '.join(head.labels[:8])}"
                f"{', ...' if len(head.labels) > 8 else ''}), {head.activation}")

    def servable(self, loaded: LoadedModel, batcher: Batcher, deps: ServableDeps) -> BaseServable:
        return ClassifyServable(loaded.info, loaded.tokenizer, loaded.extras["pairs"], batcher,
                                replace(deps, cache=None))


SPEC = ClassifySpec()
