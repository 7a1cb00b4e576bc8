"""The embeddings task (EmbeddingsCalculatorOV): pooling and L2 normalisation appended to the IR, one vector
per input; long texts can be split into chunks (:mod:`.passages`) and combined again."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ovembed import matryoshka
from ovembed.config import ServeConfig, Task
from ovembed.errors import ConfigError
from ovembed.graphs import EMBEDDINGS, GraphOptions
from ovembed.heads.st_modules import HeadSpec, UnmappableModule, mark_prompt, served_head
from ovembed.prompts import prompts_from_record
from ovembed.serving import tracing
from ovembed.serving.api import ChunkSpan, EmbedOptions, EmbedResult, Inputs, ModelInfo, Timings, TokenIds
from ovembed.serving.tasks.base import NO_DEPS, BaseServable, ServableDeps, as_documents
from ovembed.serving.tasks.passages import chunk_document, weighted_mean
from ovembed.serving.tasks.pooling import resolve_pooling
from ovembed.serving.tasks.spec import LoadedModel, Prepared, Source, TaskSpec, resolve_max_length
from ovembed.serving.tasks.tokenizer import ServingTokenizer

if TYPE_CHECKING:
    import openvino as ov

    from ovembed.serving.batching.batcher import Batcher

log = logging.getLogger("ovembed.serving.engine")
_load_log = logging.getLogger("ovembed.serving")
_NO_OPTIONS = EmbedOptions()


class EmbeddingServable(BaseServable):
    """One loaded embeddings model: ``embed`` (and ``tokenize``) for the front ends."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, batcher: Batcher,
                 deps: ServableDeps = NO_DEPS) -> None:
        super().__init__(info, tokenizer, batcher, deps)
        self.max_chunks = deps.max_chunks  # --max_chunks_per_input: chunks one input may need

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None,
                    options: EmbedOptions | None = None) -> EmbedResult:
        """Texts get the prompt and special tokens; token-id documents are used as given
        (token_type_ids 0). ``options.chunking`` splits long texts (see :mod:`.passages`).

        Raises ``InputTooLong``, ``InvalidInput``, ``Overloaded``; cancelling drops the work.
        """
        opts = options or _NO_OPTIONS
        inputs = as_documents(inputs)
        if len(inputs) == 0:
            return EmbedResult(np.empty((0, self._info.dimensions), dtype=np.float32), [])
        cut = self._info.truncate if truncate is None else truncate
        texts = isinstance(inputs[0], str)
        with self.in_progress():
            started = time.perf_counter()
            spans: list[ChunkSpan] | None = None
            if texts and opts.chunking is not None:
                docs, spans = await self._off_loop(inputs, self._chunk_texts, inputs, opts)  # type: ignore[arg-type]
            else:
                docs = await self._encode(inputs, cut, opts)
                if texts:
                    docs = self._mark_prompt(docs, opts.prompt)
            tokenized = time.perf_counter()
            tracing.tokenized(started, tokenized, docs)
            if log.isEnabledFor(logging.DEBUG):  # carries the request id (server.RequestIdFilter)
                log.debug("%s: %d input(s), %d tokens, tokenized in %.1f ms", self._info.name, len(docs),
                          sum(len(d) for d in docs), (tokenized - started) * 1e3)
            rows, queue_s, infer_s = await self._infer(docs)
        timings = Timings(tokenization=tokenized - started, queue=queue_s, inference=infer_s)
        counts = [len(d) for d in docs]
        if spans is None:
            return EmbedResult(rows, counts, timings)
        assert opts.chunking is not None
        if opts.chunking.combine == "none":
            return EmbedResult(rows, counts, timings, chunks=spans)
        owner = np.array([c.input_index for c in spans])
        combined = np.stack([weighted_mean(rows[owner == i], [n for n, o in zip(counts, owner, strict=True)
                                                              if o == i], normalize=self._info.normalize)
                             for i in range(len(inputs))])
        totals = [int(sum(n for n, o in zip(counts, owner, strict=True) if o == i)) for i in range(len(inputs))]
        return EmbedResult(combined, totals, timings)

    def _chunk_texts(self, texts: Sequence[str], opts: EmbedOptions) -> tuple[list[TokenIds], list[ChunkSpan]]:
        """The text chunker: each text's windows of at most ``max_length`` tokens (:mod:`.passages`)."""
        assert opts.chunking is not None
        prefix, suffix = self.tokenizer.affixes
        docs: list[TokenIds] = []
        spans: list[ChunkSpan] = []
        encoded = self.tokenizer.encode_with_offsets([opts.prompt + t for t in texts])
        for i, (ids, offsets) in enumerate(encoded):
            for chunk in chunk_document(ids, offsets, prompt_chars=len(opts.prompt), prefix=prefix,
                                        suffix=suffix, max_length=self._info.max_length,
                                        options=opts.chunking, server_max_chunks=self.max_chunks):
                docs.append(np.asarray(chunk.ids, dtype=np.int64))
                spans.append(ChunkSpan(i, chunk.start, chunk.end))
        return self._mark_prompt(docs, opts.prompt), spans

    def _mark_prompt(self, docs: list[TokenIds], prompt: str) -> list[TokenIds]:
        """``docs`` (each ``prefix + prompt + ...``) with the prompt marked when the head pools no prompt
        token; the count is sentence-transformers': the prompt tokenized alone, less a trailing special."""
        if not prompt or self._info.pool_prompt:
            return docs
        ids = self.tokenizer.encode_texts([prompt], truncate=True)[0]
        count = len(ids) - 1 if self.tokenizer.affixes[1] else len(ids)
        return [mark_prompt(np.asarray(d, dtype=np.int64)[None, :], np.ones((1, len(d)), np.int64), count)[0]
                for d in docs]


def _pooled_model(model: ov.Model, graph: GraphOptions, spec: HeadSpec) -> ov.Model:
    from ovembed.heads.embeddings import add_head

    outputs = model.outputs
    if len(outputs) == 1 and outputs[0].get_partial_shape().rank.get_length() == 2:
        if graph.normalize_embeddings:  # already pooled: only normalise
            import openvino as ov
            import openvino.opset13 as ops

            axes = ops.constant(np.array([1], dtype=np.int64))
            norm = ops.normalize_l2(outputs[0], axes, 1e-12, "max")
            model = ov.Model([ops.result(norm)], model.get_parameters(), model.get_friendly_name())
        return model
    return add_head(model, spec)


class EmbeddingsSpec(TaskSpec, task=Task.EMBEDDINGS, calculator=EMBEDDINGS, endpoint="/v3/embeddings",
                     throughput_executor=True):

    def prepare(self, source: Source) -> Prepared:
        choice = resolve_pooling(source.graph.pooling, source.model_dir, source.record)
        if choice.warning is not None:
            _load_log.warning("model %s: %s", source.name, choice.warning)
        else:
            _load_log.info("model %s: pooling %s (from %s)", source.name, choice.pooling.value, choice.origin)
        graph = replace(source.graph, pooling=choice.pooling)
        try:  # the recorded sentence-transformers chain; refused when modules.json holds a module it lacks
            head = served_head(source.model_dir, source.record, choice.pooling, graph.normalize_embeddings)
        except UnmappableModule as exc:
            raise ConfigError(f"model {source.name} is not served: {exc}") from None
        max_length = resolve_max_length(source.model_dir, source.record)
        return Prepared(graph, max_length, lambda model: _pooled_model(model, graph, head),
                        {"pooling": str(graph.pooling), "normalize": graph.normalize_embeddings,
                         "head": head.key()},
                        ((1, 8), (4, min(128, max_length))), warning=choice.warning, extras={"head": head})

    def info(self, source: Source, prepared: Prepared, *, dimensions: int, device: str, precision: str,
             created: int) -> ModelInfo:
        graph = prepared.graph
        return replace(super().info(source, prepared, dimensions=dimensions, device=device, precision=precision,
                                    created=created),
                       pooling=graph.pooling, normalize=graph.normalize_embeddings, truncate=graph.truncate,
                       prompts=prompts_from_record(source.record).with_default(source.cfg.default_prompt_name),
                       matryoshka=matryoshka.ANY if source.cfg.allow_any_dimensions else matryoshka.from_record(
                           source.record),
                       pool_prompt=prepared.extras["head"].include_prompt)

    def ready_details(self, info: ModelInfo, prepared: Prepared, cfg: ServeConfig) -> str:
        return f"{info.dimensions} dims, max_length {info.max_length}"

    def servable(self, loaded: LoadedModel, batcher: Batcher, deps: ServableDeps) -> BaseServable:
        return EmbeddingServable(loaded.info, loaded.tokenizer, batcher, deps)


SPEC = EmbeddingsSpec()
