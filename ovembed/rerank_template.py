"""The prompt template of a decoder reranker (Qwen3-Reranker style), applied by the server.

A decoder reranker scores ``prefix + format(instruction, query, document) + suffix``: the prefix and the
suffix (a system prompt, the chat markers, the assistant turn with an empty think block) are tokenized
alone and never cut; the formatted middle is tokenized as one text and is what truncation and chunking
cut, so prefix and suffix always fit the window (the model card's ``process_inputs``). The export
records the template in ovembed_model.json (``"rerank_template"``); a request may replace the
instruction (``instruction`` on /v3/rerank, Cohere, TEI and vLLM bodies). Standard library only:
shared by export and serving.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Qwen3-Reranker's model card (Qwen/Qwen3-Reranker-0.6B, "Transformers Usage"), verbatim.
QWEN3_PREFIX = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and "
                "the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n"
                "<|im_start|>user\n")
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
QWEN3_FORMAT = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
_SLOTS = ("{instruction}", "{query}", "{document}")


@dataclass(frozen=True)
class RerankTemplate:
    """How a (query, document) pair becomes the decoder's input, and which tokens answer."""

    prefix: str = QWEN3_PREFIX
    suffix: str = QWEN3_SUFFIX
    instruction: str = QWEN3_INSTRUCTION  # the default; a request may send its own
    pair_format: str = QWEN3_FORMAT  # with {instruction}, {query} and {document}; the document comes last
    yes_token: str = "yes"
    no_token: str = "no"

    def __post_init__(self) -> None:
        missing = [slot for slot in _SLOTS if slot not in self.pair_format]
        if missing:
            raise ValueError(f"the rerank pair format lacks {', '.join(missing)}")
        if not self.pair_format.endswith("{document}"):
            raise ValueError("the rerank pair format must end with {document} (chunking cuts the document)")

    def head_text(self, query: str, instruction: str | None = None) -> str:
        """The formatted pair up to where the document starts."""
        text = self.pair_format[: -len("{document}")]
        return text.replace("{instruction}", self.instruction if instruction is None else instruction) \
            .replace("{query}", query)

    def middle(self, query: str, document: str, instruction: str | None = None) -> str:
        """The formatted pair (what truncation cuts)."""
        return self.head_text(query, instruction) + document

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, data: object) -> RerankTemplate:
        if not isinstance(data, dict):
            raise ValueError("rerank_template must be an object")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if not all(isinstance(v, str) for v in known.values()):
            raise ValueError("rerank_template fields must be strings")
        return cls(**known)
