"""(query, document) pairs -> token-id windows the model can take, with the Rust ``tokenizers``
library and the model's own pair template (tokenizer.json).

A pair longer than the model's window is split the way the tokenizers library splits overflowing
pairs (truncation strategy ``only_second`` with a stride): every chunk carries the full query and
the next slice of the document, consecutive slices overlapping by :func:`overlap_for` tokens, so
a sentence cut by one boundary is whole in a neighbouring chunk (OVMS's chunks do not overlap).
The query keeps at most half the window (OVMS's rule). ``max_doc_tokens`` cuts a document before chunking (Cohere's
``max_tokens_per_doc``, OVMS's ``--max_doc_length``); ``truncate`` keeps one window per
document (TEI's ``truncate``), from the end of the document with ``direction="left"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ovembed.errors import ConfigError, InvalidInput
from ovembed.serving.api import TruncationDirection

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def overlap_for(window: int) -> int:
    """Tokens shared by consecutive chunks of a document: a quarter of the window, at most 64."""
    return min(window // 4, 64)


@dataclass
class Chunks:
    ids: list[list[int]]  # one token-id list per (query, chunk) pair, documents in order
    doc_index: np.ndarray  # int64 [n_chunks]: the document each chunk belongs to (non-decreasing)
    chunk_counts: list[int]  # chunks per document

    def token_counts(self) -> list[int]:
        """Tokens the model runs per document, over all of its chunks."""
        per_chunk = np.fromiter((len(c) for c in self.ids), dtype=np.int64, count=len(self.ids))
        return np.bincount(self.doc_index, weights=per_chunk, minlength=len(self.chunk_counts)) \
            .astype(np.int64).tolist()


class PairChunker:
    """Thread-safe: the tokenizers are configured once and never mutated."""

    def __init__(self, tokenizer_json: str, *, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.max_length = max_length
        self._plain = Tokenizer.from_str(tokenizer_json)
        self._plain.no_padding()
        self._plain.no_truncation()
        self.pair_specials = self._plain.num_special_tokens_to_add(True)
        if max_length <= 2 * self.pair_specials + 1:
            raise ConfigError(f"a rerank window of {max_length} tokens leaves no room for a query and a document")
        self.max_query_tokens = max_length // 2
        # One overlap for every query: the one of the smallest window (the longest query).
        self.overlap = overlap_for(max_length - self.pair_specials - self.max_query_tokens)
        self._chunking = self._window_tokenizer(tokenizer_json, self.overlap, "right")
        self._truncating = {d: self._window_tokenizer(tokenizer_json, 0, d) for d in ("right", "left")}

    def _window_tokenizer(self, tokenizer_json: str, stride: int, direction: str) -> Tokenizer:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(tokenizer_json)
        tok.no_padding()
        tok.enable_truncation(self.max_length, stride=stride, strategy="only_second", direction=direction)
        return tok

    def _query(self, query: str, truncate: bool = True) -> tuple[str, int]:
        """The query, cut to at most half the window (at a token boundary); its token count.
        ``truncate`` false: a longer query is a 400 naming ``query``."""
        enc = self._plain.encode(query, add_special_tokens=False)
        n = len(enc.ids)
        if n > self.max_query_tokens and not truncate:
            raise InvalidInput(f"'query' has {n} tokens; the model takes queries of at most {self.max_query_tokens} "
                               f"(half its {self.max_length}-token window): shorten it, or let it be cut "
                               "(truncate_prompt_tokens: -1; TEI: truncate: true)",
                               param="query")
        while n > self.max_query_tokens:
            query = query[: enc.offsets[self.max_query_tokens - 1][1]]
            enc = self._plain.encode(query, add_special_tokens=False)
            if len(enc.ids) >= n:  # the cut did not shorten it: cut by characters
                query = query[: max(1, len(query) - 1)]
                enc = self._plain.encode(query, add_special_tokens=False)
            n = len(enc.ids)
        return query, n

    def _cut_documents(self, documents: Sequence[str], limit: int, direction: TruncationDirection) -> list[str]:
        """Documents longer than ``limit`` tokens, cut at a token boundary."""
        lengths = [len(e.ids) for e in self._plain.encode_batch_fast(list(documents), add_special_tokens=False)]
        long = [i for i, n in enumerate(lengths) if n > limit]
        if not long:
            return list(documents)
        out = list(documents)
        for i, enc in zip(long, self._plain.encode_batch([documents[i] for i in long], add_special_tokens=False),
                          strict=True):
            text = documents[i]
            out[i] = text[enc.offsets[-limit][0]:] if direction == "left" else text[: enc.offsets[limit - 1][1]]
        return out

    def chunk(self, query: str, documents: Sequence[str], *, max_doc_tokens: int | None = None,
              truncate: bool = False, direction: TruncationDirection = "right",
              truncate_query: bool = True, instruction: str | None = None) -> Chunks:
        if instruction is not None:
            raise InvalidInput("'instruction' applies to decoder rerankers (a prompt template); this model is a "
                               "cross-encoder and takes none", param="instruction")
        for i, doc in enumerate(documents):
            if not isinstance(doc, str):
                raise InvalidInput(f"documents[{i}] must be a string", param="documents")
        query, _ = self._query(query, truncate_query)
        docs = self._cut_documents(documents, max_doc_tokens, direction) if max_doc_tokens else list(documents)
        tok = self._truncating[direction] if truncate else self._chunking
        encodings = tok.encode_batch_fast([(query, doc) for doc in docs])
        ids: list[list[int]] = []
        counts: list[int] = []
        for enc in encodings:
            parts = [enc] if truncate else [enc, *enc.overflowing]
            ids.extend(list(p.ids) for p in parts)
            counts.append(len(parts))
        doc_index = np.repeat(np.arange(len(docs), dtype=np.int64), counts)
        return Chunks(ids, doc_index, counts)
