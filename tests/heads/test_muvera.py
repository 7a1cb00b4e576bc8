"""MUVERA (ovembed.heads.muvera): shapes, determinism per seed, the empty-partition fill rule on a hand-made case,
the vectorised code against a loop written out here from the published construction, FDE dot products against
Chamfer (MaxSim) similarity, parameter checks, and FastEmbed's own Muvera when fastembed is installed."""

from __future__ import annotations

import numpy as np
import pytest

from ovembed.errors import InvalidInput
from ovembed.heads.muvera import DEFAULT_PARAMS, Muvera, MuveraParams, hamming_matrix, muvera_for, params_from_record
from ovembed.heads.token_embed import maxsim


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def reference_fde(m: Muvera, vectors: np.ndarray, kind: str) -> np.ndarray:
    """One repetition, one partition, one vector at a time (FastEmbed's process loop)."""
    p, out = m.params, []
    for rep in range(p.r_reps):
        centers = np.zeros((p.partitions(), m.dim))
        members: dict[int, list[int]] = {c: [] for c in range(p.partitions())}
        for i, v in enumerate(vectors):
            cid = sum(1 << b for b in range(p.k_sim) if float(v @ m.simhash[rep][:, b]) > 0)
            centers[cid] += v
            members[cid].append(i)
        if kind == "document":
            for c, idx in members.items():
                if idx:
                    centers[c] /= len(idx)
            for c, idx in members.items():
                if not idx:
                    dist = [bin(c ^ o).count("1") if members[o] else 99 for o in range(p.partitions())]
                    centers[c] = vectors[members[int(np.argmin(dist))][0]]
        if p.dim_proj < m.dim:
            centers = centers @ m.inner[rep]
        out.append(centers.reshape(-1))
    return np.concatenate(out)


def test_shapes_and_output_dim() -> None:
    rng = np.random.default_rng(0)
    tokens = _unit(rng.standard_normal((11, 32)))
    m = Muvera(32, MuveraParams(k_sim=3, dim_proj=8, r_reps=4))
    assert m.encode(tokens, "document").shape == (2**3 * 8 * 4,) == (m.output_dim,)
    assert m.encode(tokens, "document").dtype == np.float32
    whole = Muvera(32, MuveraParams(k_sim=2, dim_proj=32, r_reps=3))  # dim_proj == dim: no projection
    assert whole.encode(tokens, "query").shape == (2**2 * 32 * 3,)
    sketched = Muvera(32, MuveraParams(k_sim=3, dim_proj=8, r_reps=4, final_dim=100))
    assert sketched.encode(tokens, "query").shape == (100,)
    assert Muvera(128).output_dim == 10240  # FastEmbed's defaults: k_sim 5, dim_proj 16, r_reps 20
    assert m.encode_many([tokens, tokens[:3], tokens[:0]], "query").shape == (3, m.output_dim)
    np.testing.assert_array_equal(m.encode(tokens[:0], "document"), np.zeros(m.output_dim, dtype=np.float32))


def test_deterministic_per_seed() -> None:
    tokens = _unit(np.random.default_rng(1).standard_normal((9, 16)))
    params = MuveraParams(k_sim=3, dim_proj=4, r_reps=5, seed=123)
    a = Muvera(16, params).encode(tokens, "document")
    np.testing.assert_array_equal(a, Muvera(16, params).encode(tokens, "document"))
    np.testing.assert_array_equal(a, muvera_for(16, params).encode(tokens, "document"))
    assert muvera_for(16, params) is muvera_for(16, params)
    other = Muvera(16, params.merged({"seed": 124})).encode(tokens, "document")
    assert not np.allclose(a, other)


@pytest.mark.parametrize("params", [MuveraParams(k_sim=3, dim_proj=4, r_reps=3, seed=5),
                                    MuveraParams(k_sim=4, dim_proj=8, r_reps=2, seed=9)])
@pytest.mark.parametrize("kind", ["query", "document"])
def test_vectorised_equals_the_loop(params: MuveraParams, kind: str) -> None:
    rng = np.random.default_rng(2)
    m = Muvera(8 if params.dim_proj == 8 else 16, params)
    for n in (1, 3, 40):
        tokens = _unit(rng.standard_normal((n, m.dim)))
        np.testing.assert_allclose(m.encode(tokens, kind), reference_fde(m, tokens, kind), rtol=1e-5, atol=1e-6)


def test_empty_partitions_take_the_first_vector_of_the_nearest_non_empty_one() -> None:
    m = Muvera(2, MuveraParams(k_sim=2, dim_proj=2, r_reps=1))
    m.simhash = np.eye(2)[None]  # partition id = [x > 0] + 2 [y > 0]
    b, c, a = np.array([-1.0, 1.0]), np.array([2.0, -3.0]), np.array([1.0, -1.0])  # ids 2, 1, 1
    doc = m.encode(np.stack([b, c, a]), "document").reshape(4, 2)
    # partitions 0 and 3 are empty; 1 and 2 are both one bit away: the lower id (1) wins, and its first token (c)
    np.testing.assert_allclose(doc, np.stack([c, (c + a) / 2, b, c]))
    query = m.encode(np.stack([b, c, a]), "query").reshape(4, 2)  # sums, empty partitions stay zero
    np.testing.assert_allclose(query, np.stack([np.zeros(2), c + a, b, np.zeros(2)]))
    assert hamming_matrix(2).tolist() == [[0, 1, 1, 2], [1, 0, 2, 1], [1, 2, 0, 1], [2, 1, 1, 0]]


def test_fde_dot_product_tracks_chamfer_similarity() -> None:
    """Clustered token vectors (documents around a few topics, queries from a document's topics): the FDE dot
    product of a query and a document, over r_reps, correlates with their MaxSim score."""
    rng = np.random.default_rng(3)
    dim, topics = 64, _unit(rng.standard_normal((40, 64)))
    docs = []
    for _ in range(60):
        chosen = rng.choice(40, size=3, replace=False)
        docs.append(_unit(topics[rng.choice(chosen, size=30)] + 0.4 * rng.standard_normal((30, dim)) / np.sqrt(dim)))
    m = Muvera(dim, MuveraParams(k_sim=4, dim_proj=16, r_reps=20, seed=42))
    doc_fdes = m.encode_many(docs, "document")
    correlations = []
    for q in range(10):
        query = _unit(docs[q][:8] + 0.4 * rng.standard_normal((8, dim)) / np.sqrt(dim))
        exact = maxsim(query, docs)
        approx = doc_fdes @ m.encode(query, "query") / m.params.r_reps
        correlations.append(np.corrcoef(exact, approx)[0, 1])
    assert min(correlations) > 0.8, correlations


def test_parameter_checks_name_the_field() -> None:
    for params, param in ((MuveraParams(dim_proj=200), "muvera.dim_proj"), (MuveraParams(k_sim=0), "muvera.k_sim"),
                          (MuveraParams(k_sim=11), "muvera.k_sim"), (MuveraParams(r_reps=0), "muvera.r_reps"),
                          (MuveraParams(seed=-1), "muvera.seed"), (MuveraParams(k_sim=10, r_reps=20), "muvera"),
                          (MuveraParams(final_dim=0), "muvera.final_dim")):
        with pytest.raises(InvalidInput) as err:
            params.check(128)
        assert err.value.param == param
    MuveraParams(k_sim=10, dim_proj=16, r_reps=4).check(128)  # 65536 floats: the limit


def test_record_defaults() -> None:
    assert params_from_record(None, 128) == DEFAULT_PARAMS
    assert params_from_record(None, 4) == MuveraParams(dim_proj=4)  # the default projection cut to the model's dim
    assert params_from_record({"k_sim": 3, "seed": 7, "junk": 1, "r_reps": "x"}, 128) == MuveraParams(k_sim=3, seed=7)


def test_same_as_fastembed() -> None:
    muvera = pytest.importorskip("fastembed.postprocess.muvera")
    rng = np.random.default_rng(4)
    for dim, k_sim, dim_proj, r_reps, seed in ((128, 5, 16, 20, 42), (32, 3, 32, 4, 7), (48, 4, 8, 6, 0)):
        theirs = muvera.Muvera(dim, k_sim=k_sim, dim_proj=dim_proj, r_reps=r_reps, random_seed=seed)
        ours = Muvera(dim, MuveraParams(k_sim=k_sim, dim_proj=dim_proj, r_reps=r_reps, seed=seed))
        for n in (1, 5, 64):
            tokens = _unit(rng.standard_normal((n, dim))).astype(np.float32)
            np.testing.assert_allclose(ours.encode(tokens, "document"), theirs.process_document(tokens),
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(ours.encode(tokens, "query"), theirs.process_query(tokens),
                                       rtol=1e-5, atol=1e-6)
