"""The byte-bounded LRU of embedded documents."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovembed.serving.tasks.cache import ENTRY_OVERHEAD, EmbeddingCache

ROW = np.arange(8, dtype=np.float32)  # 32 bytes
SIZE = ROW.nbytes + ENTRY_OVERHEAD


def test_hit_returns_the_stored_row_and_counts() -> None:
    cache = EmbeddingCache(10 * SIZE)
    key = cache.key(("m", 1), "embed", [101, 7, 102])
    assert cache.get(key) is None
    cache.put(key, ROW, 3)
    row, tokens = cache.get(cache.key(("m", 1), "embed", np.array([101, 7, 102], dtype=np.int32)))  # type: ignore[misc]
    assert tokens == 3 and row.tobytes() == ROW.tobytes() and not row.flags.writeable
    assert cache.stats().hits == 1 and cache.stats().misses == 1


def test_keys_separate_versions_options_and_ids() -> None:
    cache = EmbeddingCache(10 * SIZE)
    cache.put(cache.key(("m", 1), "embed", [1, 2]), ROW, 2)
    assert cache.get(cache.key(("m", 2), "embed", [1, 2])) is None
    assert cache.get(cache.key(("m", 1), "sparse", [1, 2])) is None
    assert cache.get(cache.key(("m", 1), "embed", [2, 1])) is None
    assert cache.get(cache.key(("n", 1), "embed", [1, 2])) is None


def test_least_recently_used_goes_first_and_bytes_stay_bounded() -> None:
    cache = EmbeddingCache(3 * SIZE)
    keys = [cache.key(("m", 1), None, [i]) for i in range(4)]
    for k in keys[:3]:
        cache.put(k, ROW, 1)
    assert cache.get(keys[0]) is not None  # 0 is now the most recent; 1 the oldest
    cache.put(keys[3], ROW, 1)
    assert cache.get(keys[1]) is None and cache.get(keys[0]) is not None
    assert cache.stats().bytes == 3 * SIZE and len(cache) == 3


def test_oversized_rows_are_not_stored_and_copies_are_kept() -> None:
    cache = EmbeddingCache(SIZE)
    big = np.zeros(1000, dtype=np.float32)
    cache.put(cache.key(("m", 1), None, [1]), big, 1)
    assert len(cache) == 0
    row = ROW.copy()
    cache.put(cache.key(("m", 1), None, [2]), row, 1)
    row[:] = -1  # the caller's buffer is reused (batcher output): the cache must not see it
    assert cache.get(cache.key(("m", 1), None, [2]))[0].tolist() == ROW.tolist()  # type: ignore[index]


def test_drop_scope_forgets_one_model_version() -> None:
    cache = EmbeddingCache(10 * SIZE)
    for name, version in (("a", 1), ("a", 2), ("b", 1)):
        cache.put(cache.key((name, version), None, [1]), ROW, 1)
    assert cache.drop_scope(("a", 1)) == 1
    assert len(cache) == 2 and cache.stats().bytes == 2 * SIZE
    assert cache.get(cache.key(("a", 2), None, [1])) is not None
    with pytest.raises(ValueError):
        EmbeddingCache(-1)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 6 * SIZE), st.lists(st.tuples(st.integers(0, 9), st.integers(1, 64)), max_size=60))
def test_budget_is_never_exceeded(budget: int, ops: list[tuple[int, int]]) -> None:
    cache = EmbeddingCache(budget)
    for doc, dims in ops:
        cache.put(cache.key(("m", 1), None, [doc]), np.ones(dims, dtype=np.float32), 1)
        stats = cache.stats()
        assert stats.bytes <= budget
        assert stats.bytes == sum(r.nbytes + ENTRY_OVERHEAD for r, _ in cache._entries.values())
