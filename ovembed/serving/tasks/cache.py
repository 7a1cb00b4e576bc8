"""An in-memory LRU cache of embedded documents, bounded in bytes (``--cache_bytes``).

A key is the model's *scope* (its name and loaded version), the head options that shape the
output (task, pooling...) and a 128-bit BLAKE2b digest of the token ids the model sees (the
prompt is part of those ids). The value is the model's output row and the document's token
count. A reload drops the replaced version's entries (:meth:`EmbeddingCache.drop_scope`); the versions in
the keys make a stale hit impossible even in between.

Accounting counts each row's bytes plus a fixed per-entry overhead, so the bound holds for
many small vectors too. Used from the event loop only (no lock).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

from ovembed.serving.api import CacheStats

# Per entry beyond the row's own bytes: the key tuple and digest, the OrderedDict node, the
# numpy header (measured with sys.getsizeof on CPython 3.12: about 330 bytes).
ENTRY_OVERHEAD = 400

Scope = tuple[str, int]  # (model name, version)


class EmbeddingCache:
    """LRU of output rows; :meth:`get` and :meth:`put` are O(1)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be 0 (off) or more")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[Scope, Hashable, bytes], tuple[np.ndarray, int]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(scope: Scope, options: Hashable, ids: object) -> tuple[Scope, Hashable, bytes]:
        """The key of a document: ``ids`` is a list of ints or an integer numpy array."""
        arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64))
        return scope, options, hashlib.blake2b(arr.tobytes(), digest_size=16).digest()

    def get(self, key: tuple[Scope, Hashable, bytes]) -> tuple[np.ndarray, int] | None:
        """(row, token count) and mark it recently used; None on a miss. Counts both."""
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: tuple[Scope, Hashable, bytes], row: np.ndarray, tokens: int) -> None:
        """Store a copy of ``row``, evicting least recently used entries to stay in budget.
        A row bigger than the whole budget is not stored."""
        size = row.nbytes + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[0].nbytes + ENTRY_OVERHEAD
        value = np.array(row, copy=True)
        value.setflags(write=False)  # handed out on hits: nobody may change it
        self._entries[key] = (value, tokens)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (evicted, _) = self._entries.popitem(last=False)
            self._bytes -= evicted.nbytes + ENTRY_OVERHEAD

    def drop_scope(self, scope: Scope) -> int:
        """Forget every entry of one model version; returns how many."""
        doomed = [k for k in self._entries if k[0] == scope]
        for k in doomed:
            row, _ = self._entries.pop(k)
            self._bytes -= row.nbytes + ENTRY_OVERHEAD
        return len(doomed)

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, len(self._entries), self._bytes, self.max_bytes)

    def __len__(self) -> int:
        return len(self._entries)
