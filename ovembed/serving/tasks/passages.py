"""Long documents: split on token boundaries into chunks the model accepts, and combine them.

A text is tokenized once (with character offsets); its content tokens (the prompt's and the
special tokens aside) are cut into windows of ``size`` tokens that overlap by ``overlap``;
each chunk becomes ``prefix + prompt + window + suffix`` (the model's own special tokens), so a
chunk embeds exactly like that token sequence sent on its own. ``combine="mean"`` returns the
token-weighted mean of the chunk vectors, re-normalised when the model normalises (what vLLM
does); ``"none"`` returns every chunk with the character span of the text it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ovembed.errors import InvalidInput, PayloadTooLarge
from ovembed.serving.api import ChunkingOptions


@dataclass(frozen=True)
class Chunk:
    """One chunk of one input: the ids the model sees and the characters of the text it covers."""

    ids: list[int]
    start: int  # character offsets in the input text (without the prompt), end exclusive
    end: int


def spans(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Windows ``[start, end)`` covering ``range(length)``: ``size`` tokens each, consecutive
    windows sharing ``overlap`` tokens, the last one ending at ``length``. An empty input is one
    empty window."""
    if size < 1:
        raise InvalidInput("'chunking.size' must be at least 1", param="chunking")
    if not 0 <= overlap < size:
        raise InvalidInput(f"'chunking.overlap' must be at least 0 and less than the chunk size ({size}), "
                           f"got {overlap}", param="chunking")
    if length <= size:
        return [(0, length)]
    step = size - overlap
    out = []
    start = 0
    while True:
        end = min(start + size, length)
        out.append((start, end))
        if end == length:
            return out
        start += step


def chunk_document(ids: Sequence[int], offsets: Sequence[tuple[int, int]], *, prompt_chars: int,
                   prefix: Sequence[int], suffix: Sequence[int], max_length: int,
                   options: ChunkingOptions, server_max_chunks: int | None = None) -> list[Chunk]:
    """Chunks of one tokenized ``prompt + text`` (no special tokens; ``offsets`` per token into
    ``prompt + text``). Tokens that start inside the prompt's ``prompt_chars`` characters are the
    prompt and go into every chunk. More chunks than ``options.max_chunks`` (the request's) or
    ``server_max_chunks`` (``--max_chunks_per_input``) is a 413 naming the limit."""
    n_prompt = 0
    while n_prompt < len(ids) and offsets[n_prompt][0] < prompt_chars:
        n_prompt += 1
    room = max_length - len(prefix) - len(suffix) - n_prompt
    if room < 1:
        raise InvalidInput(f"the prompt takes {n_prompt} of the model's {max_length} tokens: no room "
                           "left for a chunk", param="chunking")
    size = room if options.size is None else options.size
    if size > room:
        raise InvalidInput(f"'chunking.size' must be at most {room} for this model and prompt, got {size}",
                           param="chunking")
    prompt_ids = list(ids[:n_prompt])
    content, where = list(ids[n_prompt:]), offsets[n_prompt:]
    windows = spans(len(content), size, options.overlap)
    if options.max_chunks is not None and len(windows) > options.max_chunks:
        raise PayloadTooLarge(f"an input needs {len(windows)} chunks of {size} tokens (overlap {options.overlap}), "
                              f"more than 'chunking.max_chunks' ({options.max_chunks}): send a shorter text, "
                              "larger chunks or a higher max_chunks", param="chunking")
    if server_max_chunks is not None and len(windows) > server_max_chunks:
        raise PayloadTooLarge(f"an input needs {len(windows)} chunks of {size} tokens (overlap {options.overlap}), "
                              f"more than the server allows per input ({server_max_chunks}, "
                              "--max_chunks_per_input): send a shorter text or larger chunks", param="chunking")
    chunks = []
    for s, e in windows:
        start = where[s][0] - prompt_chars if e > s else 0
        end = where[e - 1][1] - prompt_chars if e > s else 0
        chunks.append(Chunk([*prefix, *prompt_ids, *content[s:e], *suffix], max(start, 0), max(end, 0)))
    return chunks


def weighted_mean(vectors: np.ndarray, weights: Sequence[int], *, normalize: bool) -> np.ndarray:
    """The ``weights``-weighted mean of ``vectors`` ``[k, d]``, L2-normalised when ``normalize``."""
    w = np.asarray(weights, dtype=np.float64)
    mean = (np.asarray(vectors, dtype=np.float64) * w[:, None]).sum(axis=0) / max(float(w.sum()), 1e-12)
    if normalize:
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
    return mean.astype(np.float32)
