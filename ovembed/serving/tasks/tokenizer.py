"""Serving tokenization with the Rust ``tokenizers`` library, from the model's tokenizer.json.

Whatever padding or truncation tokenizer.json declares (MiniLM's pads and cuts to 128) is
switched off: the batcher pads, and truncation follows the request's ``truncate``. Texts get
the model's special tokens; token-id documents are taken as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ovembed.errors import ConfigError, InputTooLong, InvalidInput
from ovembed.hf_files import read_json_object
from ovembed.layout import TOKENIZER_CONFIG, TOKENIZER_JSON
from ovembed.serving.api import TokenIds

_ENCODE_SLICE = 256  # texts per tokenizer call (bounds the Encoding objects alive at once)


class ServingTokenizer:
    """Texts or token ids -> per-document id lists, checked against ``max_length``.

    Thread-safe: the two underlying tokenizers are configured once and never mutated.
    """

    def __init__(self, tokenizer_json: str, *, max_length: int, vocab_size: int | None = None,
                 pad_token: str | None = None) -> None:
        from tokenizers import Tokenizer

        if max_length < 1:
            raise ConfigError(f"max_length must be positive, got {max_length}")
        self.max_length = max_length
        self._plain = Tokenizer.from_str(tokenizer_json)
        declared_pad = self._plain.padding or {}
        self._plain.no_padding()
        self._plain.no_truncation()
        # HF truncation (what sentence-transformers does): cut the text, keep [CLS] ... [SEP].
        self._truncating = Tokenizer.from_str(tokenizer_json)
        self._truncating.no_padding()
        self._truncating.enable_truncation(max_length)
        self._truncating_left = Tokenizer.from_str(tokenizer_json)  # truncation_direction "left"
        self._truncating_left.no_padding()
        self._truncating_left.enable_truncation(max_length, direction="left")
        self.num_special_tokens = self._plain.num_special_tokens_to_add(False)
        self.vocab_size = vocab_size or self._plain.get_vocab_size(with_added_tokens=True)
        self.pad_id = self._find_pad_id(declared_pad, pad_token)

    def _find_pad_id(self, declared: dict[str, Any], pad_token: str | None) -> int:
        if isinstance(declared.get("pad_id"), int):
            return int(declared["pad_id"])
        for token in (pad_token, "[PAD]", "<pad>", "<|endoftext|>"):
            if token and (tid := self._plain.token_to_id(token)) is not None:
                return int(tid)
        return 0

    @classmethod
    def from_dir(cls, model_dir: Path, *, max_length: int,
                 vocab_size: int | None = None) -> ServingTokenizer:
        """Load ``tokenizer.json`` (and the pad token from tokenizer_config.json)."""
        path = Path(model_dir) / TOKENIZER_JSON
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path} not found: serving needs the Hugging Face tokenizer "
                              "file next to the model") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        pad = read_json_object(Path(model_dir) / TOKENIZER_CONFIG, strict=True).get("pad_token")
        if isinstance(pad, dict):  # older files: {"content": "[PAD]", ...}
            pad = pad.get("content")
        try:
            return cls(text, max_length=max_length, vocab_size=vocab_size,
                       pad_token=pad if isinstance(pad, str) else None)
        except Exception as exc:  # tokenizers raises plain Exception on a bad file
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{path} cannot be loaded: {exc}") from None

    # -- embeddings ----------------------------------------------------------------------

    def encode_texts(self, texts: Sequence[str], *, truncate: bool,
                     direction: str = "right") -> list[TokenIds]:
        """Ids with special tokens, one tokenizer call for the whole batch.

        ``truncate`` false: an input longer than ``max_length`` raises ``InputTooLong``; true:
        tokens are cut at the end (``direction`` "right") or the start ("left"), special tokens
        kept.
        """
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"input[{i}] must be a string", param="input")
        tok = (self._truncating_left if direction == "left" else self._truncating) if truncate else self._plain
        ids: list[TokenIds] = []
        # In slices: the Encoding objects (tokens, offsets, masks) are several times the size of
        # the ids, so only one slice of them is alive at a time, and a too-long input is
        # rejected before the rest is tokenized.
        for start in range(0, len(texts), _ENCODE_SLICE):
            encodings = tok.encode_batch_fast(list(texts[start:start + _ENCODE_SLICE]), add_special_tokens=True)
            part = [e.ids for e in encodings]
            del encodings
            if not truncate:
                self._check_lengths(part, offset=start)
            ids.extend(part)
        return ids

    def encode_with_offsets(self, texts: Sequence[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """(ids, character offsets) per text, without special tokens and untruncated (chunking)."""
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"input[{i}] must be a string", param="input")
        encodings = self._plain.encode_batch(list(texts), add_special_tokens=False)
        return [(list(e.ids), [tuple(o) for o in e.offsets]) for e in encodings]  # type: ignore[misc]

    @functools.cached_property
    def affixes(self) -> tuple[list[int], list[int]]:
        """The special tokens the model puts before and after a text (BERT: [CLS], [SEP])."""
        plain = self._plain.encode("a", add_special_tokens=False).ids
        full = self._plain.encode("a", add_special_tokens=True).ids
        for i in range(len(full) - len(plain) + 1):
            if full[i:i + len(plain)] == plain:
                return list(full[:i]), list(full[i + len(plain):])
        return list(full), []  # pragma: no cover - a post-processor that rewrites the text

    def encode_ids(self, docs: Sequence[Sequence[int]], *, truncate: bool) -> list[TokenIds]:
        """Validate pre-tokenized documents: no special tokens added, ids within the vocabulary."""
        out: list[TokenIds] = []
        for i, doc in enumerate(docs):
            try:
                arr = np.asarray(doc)
            except (TypeError, ValueError):
                raise InvalidInput(f"input[{i}] must be a list of token ids",
                                   param="input") from None
            if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
                raise InvalidInput(f"input[{i}] must be a non-empty list of integer token ids",
                                   param="input")
            low, high = int(arr.min()), int(arr.max())
            if low < 0 or high >= self.vocab_size:
                bad = low if low < 0 else high
                raise InvalidInput(f"input[{i}] has token id {bad} outside the vocabulary "
                                   f"(0..{self.vocab_size - 1})", param="input")
            if arr.size > self.max_length:
                if not truncate:
                    raise InputTooLong(int(arr.size), self.max_length, index=i)
                arr = arr[: self.max_length]
            out.append(arr.astype(np.int64, copy=False))
        return out

    def _check_lengths(self, ids: Sequence[TokenIds], offset: int = 0) -> None:
        for i, doc in enumerate(ids):
            if len(doc) > self.max_length:
                raise InputTooLong(len(doc), self.max_length, index=offset + i)

    # -- /v3/tokenize --------------------------------------------------------------------

    def tokenize(self, texts: Sequence[str], *, add_special_tokens: bool = True,
                 max_length: int | None = None, pad_to_max_length: bool = False,
                 padding_side: str = "right") -> list[list[int]]:
        """OVMS /v3/tokenize: ``max_length`` truncates (keeping special tokens, as HF does),
        ``pad_to_max_length`` pads to ``max_length`` (default: the model's) on ``padding_side``.
        """
        if padding_side not in ("left", "right"):
            raise InvalidInput("padding_side must be 'left' or 'right'", param="padding_side")
        if max_length is not None and max_length < 1:
            raise InvalidInput("max_length must be a positive integer", param="max_length")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"text[{i}] must be a string", param="text")
        encodings = self._plain.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        specials = self.num_special_tokens if add_special_tokens else 0
        result: list[list[int]] = []
        for text, enc in zip(texts, encodings, strict=True):
            ids = enc.ids
            if max_length is not None and len(ids) > max_length:
                if specials and max_length > specials:
                    raw = self._plain.encode(text, add_special_tokens=False)
                    raw.truncate(max_length - specials)
                    ids = self._plain.post_process(raw, add_special_tokens=True).ids
                else:
                    ids = ids[:max_length]
            result.append(list(ids))
        if pad_to_max_length:
            width = max_length or self.max_length
            for i, ids in enumerate(result):
                pad = [self.pad_id] * max(0, width - len(ids))
                result[i] = pad + ids if padding_side == "left" else ids + pad
        return result
