"""(query, document) pairs -> token-id windows for a decoder reranker, its prompt template applied here.

Each window is ``prefix + middle + suffix`` (:class:`~ovembed.rerank_template.RerankTemplate`): prefix and
suffix tokenized alone, the middle (instruction, query, document) tokenized as one text, as the model
card's recipe does, so a pair that fits the window gets exactly the recipe's ids. A longer middle is cut,
never the prefix or suffix: with ``truncate`` (TEI, vLLM's ``truncate_prompt_tokens``) to its first
window, as the recipe truncates (the last with ``direction="left"``); otherwise into chunks that each
carry the instruction and query and the next slice of the document, overlapping as
:class:`~ovembed.serving.tasks.pair_chunker.PairChunker`'s do (a document scores its best chunk). The
query keeps at most half of the middle's room.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ovembed.errors import ConfigError, InvalidInput
from ovembed.rerank_template import RerankTemplate
from ovembed.serving.api import TruncationDirection
from ovembed.serving.tasks.pair_chunker import Chunks, PairChunker, overlap_for


class TemplateChunker(PairChunker):
    """Thread-safe: the tokenizers are configured once and never mutated."""

    def __init__(self, tokenizer_json: str, *, max_length: int, template: RerankTemplate) -> None:
        super().__init__(tokenizer_json, max_length=max_length)
        self.template = template
        self.prefix_ids = list(self._plain.encode(template.prefix, add_special_tokens=False).ids)
        self.suffix_ids = list(self._plain.encode(template.suffix, add_special_tokens=False).ids)
        self.room = max_length - len(self.prefix_ids) - len(self.suffix_ids)  # for the middle
        if self.room < 8:
            raise ConfigError(f"a {max_length}-token window leaves {self.room} tokens for the query and the "
                              "document after the rerank template's prefix and suffix")
        self.max_query_tokens = self.room // 2
        self.overlap = overlap_for(self.room // 2)

    def middle_ids(self, query: str, documents: Sequence[str], instruction: str | None) -> list[tuple[list[int], int]]:
        """Per document: the middle's ids and how many of them come before the document."""
        template = self.template
        starts = [len(template.head_text(query, instruction))] * len(documents)
        encodings = self._plain.encode_batch([template.middle(query, d, instruction) for d in documents],
                                             add_special_tokens=False)
        out = []
        for enc, start in zip(encodings, starts, strict=True):
            ids = list(enc.ids)
            split = next((i for i, (_, end) in enumerate(enc.offsets) if end > start), len(ids))
            out.append((ids, split))
        return out

    def _windows(self, ids: list[int], split: int, truncate: bool, direction: TruncationDirection) -> list[list[int]]:
        if len(ids) <= self.room:
            return [ids]
        head, doc = ids[:split], ids[split:]
        width = self.room - len(head)
        if width < 1:
            raise InvalidInput(f"the instruction and query take {len(head)} tokens, the model's window leaves "
                               f"{self.room} after its template: shorten the instruction or the query",
                               param="instruction")
        if truncate:
            return [head + (doc[-width:] if direction == "left" else doc[:width])]
        step = max(1, width - min(self.overlap, width // 2))
        windows = []
        for start in range(0, len(doc), step):
            windows.append(head + doc[start:start + width])
            if start + width >= len(doc):
                break
        return windows

    def chunk(self, query: str, documents: Sequence[str], *, max_doc_tokens: int | None = None,
              truncate: bool = False, direction: TruncationDirection = "right",
              truncate_query: bool = True, instruction: str | None = None) -> Chunks:
        for i, doc in enumerate(documents):
            if not isinstance(doc, str):
                raise InvalidInput(f"documents[{i}] must be a string", param="documents")
        query, _ = self._query(query, truncate_query)
        docs = self._cut_documents(documents, max_doc_tokens, direction) if max_doc_tokens else list(documents)
        ids: list[list[int]] = []
        counts: list[int] = []
        for middle, split in self.middle_ids(query, docs, instruction):
            windows = self._windows(middle, split, truncate, direction)
            ids.extend(self.prefix_ids + w + self.suffix_ids for w in windows)
            counts.append(len(windows))
        doc_index = np.repeat(np.arange(len(docs), dtype=np.int64), counts)
        return Chunks(ids, doc_index, counts)
