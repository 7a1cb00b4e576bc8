"""MUVERA: one fixed-size vector (a Fixed Dimensional Encoding, FDE) from a text's token vectors, so an ordinary
vector index can pre-filter candidates that MaxSim then reranks (Dhulipala et al. 2024, "MUVERA: Multi-Vector
Retrieval via Fixed Dimensional Encodings"). numpy only: the server imports it.

The construction and its random draws follow FastEmbed's ``fastembed.postprocess.muvera.Muvera`` (the same
parameters, defaults and, for the same seed, the same output: ``tests/heads/test_muvera.py`` compares when
fastembed is installed):

* ``np.random.default_rng(seed)`` draws, in this order, ``r_reps`` SimHash matrices ``normal(size=(dim, k_sim))``
  and then the inner projections ``choice([-1, 1], size=(r_reps, dim, dim_proj))``.
* SimHash: a vector's partition is ``sum_i [v . g_i > 0] << i`` over the ``k_sim`` Gaussian hyperplanes ``g_i``:
  ``2**k_sim`` partitions per repetition.
* Per partition, a query SUMS its vectors; a document AVERAGES them, and an empty document partition takes the
  first vector (in token order) of the non-empty partition nearest by Hamming distance of the partition ids (the
  lowest id among equally near ones): FastEmbed's ``fill_empty_clusters``.
* Inner projection (AMS sketch): ``centers @ S / sqrt(dim_proj)`` with ``S`` of +-1, applied only when
  ``dim_proj < dim`` (``dim_proj == dim`` keeps the vectors as they are).
* The ``r_reps`` repetitions are concatenated: ``2**k_sim * dim_proj * r_reps`` floats (10240 by default).
* ``final_dim`` (optional, ours; FastEmbed has none): a Count Sketch of the FDE to ``final_dim`` floats (each
  coordinate added with a random sign to one random bucket; drawn after the rest), as the paper's final
  projection. It preserves dot products in expectation.

The FDE dot product of a query and a document approximates ``r_reps`` times their Chamfer (MaxSim) similarity.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np

from ovembed.errors import InvalidInput

MuveraKind = Literal["query", "document"]
MAX_OUTPUT = 1 << 16  # floats per FDE (256 KiB as float32): bounds a request's output and the random draws
MAX_K_SIM = 10
_MAX_HAMMING = 65  # FastEmbed's: more than any distance between ids


@dataclass(frozen=True)
class MuveraParams:
    """What makes an FDE; the names are FastEmbed's (``seed`` is its ``random_seed``)."""

    k_sim: int = 5  # SimHash hyperplanes per repetition: 2**k_sim partitions
    dim_proj: int = 16  # floats per partition after the inner random projection (<= the token dimension)
    r_reps: int = 20  # independent repetitions, concatenated
    seed: int = 42
    final_dim: int | None = None  # Count Sketch of the whole FDE to this many floats; None: none

    def partitions(self) -> int:
        return 1 << self.k_sim

    def output_dim(self, dim: int) -> int:
        """Floats in the FDE of ``dim``-dimensional token vectors."""
        if self.final_dim is not None:
            return self.final_dim
        return self.partitions() * min(self.dim_proj, dim) * self.r_reps

    def check(self, dim: int) -> None:
        """A 400 (``InvalidInput`` naming the field) unless these parameters fit ``dim``-dimensional vectors."""
        for name, low, high in (("k_sim", 1, MAX_K_SIM), ("dim_proj", 1, dim), ("r_reps", 1, MAX_OUTPUT),
                                ("seed", 0, (1 << 63) - 1)):
            value = getattr(self, name)
            if not low <= value <= high:
                extra = f" (the model's token vectors have {dim} dimensions)" if name == "dim_proj" else ""
                raise InvalidInput(f"'muvera.{name}' must be an integer from {low} to {high}{extra}, got {value}",
                                   param=f"muvera.{name}")
        full = self.partitions() * self.dim_proj * self.r_reps
        if full > MAX_OUTPUT:
            raise InvalidInput(f"MUVERA 2**k_sim * dim_proj * r_reps = {full} floats is more than {MAX_OUTPUT}: "
                               "lower k_sim, dim_proj or r_reps", param="muvera")
        if self.final_dim is not None and not 1 <= self.final_dim <= full:
            raise InvalidInput(f"'muvera.final_dim' must be an integer from 1 to {full} (2**k_sim * dim_proj * "
                               f"r_reps), got {self.final_dim}", param="muvera.final_dim")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, changes: Mapping[str, Any]) -> MuveraParams:
        """These parameters with ``changes`` (field name -> int or None) applied."""
        return MuveraParams(**{**asdict(self), **changes})


FIELDS = tuple(f.name for f in fields(MuveraParams))
DEFAULT_PARAMS = MuveraParams()


def params_from_record(section: object, dim: int) -> MuveraParams:
    """A model's default parameters from its record (``token_embed.muvera`` in ovembed_model.json); missing or
    malformed fields keep FastEmbed's defaults, except that the default ``dim_proj`` (16) is cut to ``dim`` for
    models with fewer dimensions per token (FastEmbed refuses them)."""
    base = DEFAULT_PARAMS.merged({"dim_proj": min(DEFAULT_PARAMS.dim_proj, dim)}) if dim > 0 else DEFAULT_PARAMS
    if not isinstance(section, Mapping):
        return base
    changes = {k: v for k, v in section.items() if k in FIELDS and (_is_int(v) or (k == "final_dim" and v is None))}
    return base.merged(changes)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def hamming_matrix(k_sim: int) -> np.ndarray:
    """``[2**k_sim, 2**k_sim]`` int: the Hamming distance between every two partition ids."""
    ids = np.arange(1 << k_sim)
    xor = ids[:, None] ^ ids[None, :]
    return np.asarray(((xor[..., None] >> np.arange(k_sim)) & 1).sum(axis=-1))


class Muvera:
    """The random draws of one (dimension, parameters) pair, and the FDE of any texts' token vectors."""

    def __init__(self, dim: int, params: MuveraParams = DEFAULT_PARAMS) -> None:
        params.check(dim)
        self.dim, self.params = dim, params
        p = params
        rng = np.random.default_rng(p.seed)
        self.simhash = np.stack([rng.normal(size=(dim, p.k_sim)) for _ in range(p.r_reps)])  # [r, dim, k]
        signs = rng.choice([-1, 1], size=(p.r_reps, dim, p.dim_proj))  # drawn even when unused (FastEmbed)
        self.project = p.dim_proj < dim
        self.inner = signs / np.sqrt(p.dim_proj)  # [r, dim, dim_proj]; linear, so applied to tokens first
        self.width = p.dim_proj
        self.full = p.partitions() * self.width * p.r_reps
        self.buckets = self.bucket_signs = None
        if p.final_dim is not None:
            self.buckets = rng.integers(0, p.final_dim, size=self.full)
            self.bucket_signs = rng.choice([-1.0, 1.0], size=self.full)
        self._bits = 1 << np.arange(p.k_sim)
        self._nearest = hamming_matrix(p.k_sim)

    @property
    def output_dim(self) -> int:
        return self.params.output_dim(self.dim)

    def partition_ids(self, vectors: np.ndarray) -> np.ndarray:
        """``[r_reps, n]``: each vector's SimHash partition in each repetition."""
        dots = np.asarray(vectors, dtype=np.float64) @ self.simhash  # [r, n, k]
        return np.asarray((dots > 0) @ self._bits)

    def encode(self, vectors: np.ndarray, kind: MuveraKind) -> np.ndarray:
        """float32 ``[output_dim]``: the FDE of one text's ``[n, dim]`` token vectors (zeros for no vectors)."""
        v = np.asarray(vectors, dtype=np.float64).reshape(-1, self.dim)
        p, n = self.params, len(v)
        if n == 0:
            return np.zeros(self.output_dim, dtype=np.float32)
        ids = self.partition_ids(v)  # [r, n]
        reps = np.arange(p.r_reps)[:, None]
        members = np.zeros((p.r_reps, p.partitions(), n))
        members[reps, ids, np.arange(n)[None, :]] = 1.0
        # [r, n, width]: projecting the tokens first gives the same FDE (the projection is linear)
        projected = v @ self.inner if self.project else np.broadcast_to(v, (p.r_reps, n, self.dim))
        centers = members @ projected  # [r, B, width]: per-partition sums
        if kind == "document":
            counts = members.sum(axis=2)  # [r, B]
            filled = counts > 0
            centers[filled] /= counts[filled][:, None]
            self._fill_empty(centers, projected, ids, ~filled)
        fde = centers.reshape(-1)
        if self.buckets is not None:
            out = np.zeros(self.output_dim)
            np.add.at(out, self.buckets, self.bucket_signs * fde)
            fde = out
        return np.asarray(fde, dtype=np.float32)

    def _fill_empty(self, centers: np.ndarray, projected: np.ndarray, ids: np.ndarray, empty: np.ndarray) -> None:
        """Each empty partition takes the first vector of the nearest non-empty one (FastEmbed's rule)."""
        n = ids.shape[1]
        first = np.full(empty.shape, n)  # [r, B]: the first token index in each partition
        np.minimum.at(first, (np.repeat(np.arange(ids.shape[0]), n), ids.reshape(-1)), np.tile(np.arange(n),
                                                                                              ids.shape[0]))
        for rep in np.flatnonzero(empty.any(axis=1)):
            masked = np.where(empty[rep][None, :], _MAX_HAMMING, self._nearest)  # [B, B]
            holes = np.flatnonzero(empty[rep])
            nearest = np.argmin(masked[holes], axis=1)
            centers[rep, holes] = projected[rep, first[rep, nearest]]

    def encode_many(self, texts: Sequence[np.ndarray], kind: MuveraKind) -> np.ndarray:
        """float32 ``[len(texts), output_dim]``."""
        out = np.zeros((len(texts), self.output_dim), dtype=np.float32)
        for i, vectors in enumerate(texts):
            out[i] = self.encode(vectors, kind)
        return out


@functools.lru_cache(maxsize=16)
def muvera_for(dim: int, params: MuveraParams) -> Muvera:
    """A cached :class:`Muvera` (the draws depend only on the dimension and the parameters)."""
    return Muvera(dim, params)
