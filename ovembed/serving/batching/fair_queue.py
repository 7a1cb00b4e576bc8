"""The order a model's queued documents are served in: fair across requests.

Strict arrival order lets one client's 2048-input request delay a 1-input query by every batch
of it (20 s measured on MiniLM). :class:`FairQueue` orders items by start-time fair queueing
over *requests*, weighted by tokens: a request's first document is tagged with the queue's
virtual time (the tag of the item at its head), each next document with the tag before it plus
that document's length. A query arriving behind a bulk request is therefore tagged like the
bulk document being served now and goes to the front of what remains: it waits for about one
batch, while requests of equal size share the engine in turns. No request is starved: every
tag is finite and the head's only grows.

Pure (no event loop, no clock): :class:`ovembed.serving.batching.batcher.BatchPolicy` reads the
queue in this order (its head is the batch's anchor) and the
:class:`~ovembed.serving.batching.batcher.Batcher` pushes, removes and compacts it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, TypeVar, overload


class Queued(Protocol):
    """What the queue needs of an item (:class:`ovembed.serving.batching.batcher.Item`)."""

    tag: float
    seq: int  # arrival order: breaks ties
    length: int  # tokens

    @property
    def dropped(self) -> bool: ...


Item = TypeVar("Item", bound=Queued)


def _key(item: Queued) -> tuple[float, int]:
    return (item.tag, item.seq)


class FairQueue(Sequence[Item]):
    """Queued items (cancelled ones included until compacted) in service order."""

    def __init__(self) -> None:
        self._items: list[Item] = []
        self._clock = 0.0  # virtual time when the queue is empty

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Item: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Item]: ...

    def __getitem__(self, index: int | slice) -> Item | Sequence[Item]:
        return self._items[index]

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    @property
    def virtual_time(self) -> float:
        for item in self._items:
            if not item.dropped:
                return item.tag
        return self._clock

    def tokens_ahead(self, lengths: Sequence[int]) -> int:
        """Tokens served before the last document of a request of ``lengths`` if it were pushed
        now (its own excluded): every live item tagged before that document's tag. A small request
        has about one document of each queued request ahead of it; a large one shares the engine
        with the others up to its own size (see :mod:`~ovembed.serving.batching.admission`)."""
        if not self._items or not lengths:
            return 0
        last = self.virtual_time + sum(max(1, n) for n in lengths[:-1])
        end = bisect.bisect_right(self._items, last, key=lambda it: it.tag)
        return sum(it.length for it in self._items[:end] if not it.dropped)

    def push(self, request: Sequence[Item]) -> None:
        """Queue one request's items (in its order), tagged from the current virtual time."""
        tag = self.virtual_time
        for item in request:
            item.tag = tag
            tag += max(1, item.length)
        if not request:
            return
        if not self._items or _key(self._items[-1]) <= _key(request[0]):
            self._items.extend(request)  # the common case (idle or FIFO-like traffic): append
            return
        for item in request:
            bisect.insort(self._items, item, key=_key)

    def remove(self, batch: Iterable[Item]) -> None:
        """Take ``batch`` (dispatched) out, with any cancelled items."""
        chosen = {id(it) for it in batch}
        if not chosen:
            return
        latest = max((it.tag for it in self._items if id(it) in chosen), default=self._clock)
        self._clock = max(self._clock, latest)
        self._items = [it for it in self._items if id(it) not in chosen and not it.dropped]

    def drop_dead_head(self) -> None:
        """Pop cancelled items off the front."""
        n = 0
        while n < len(self._items) and self._items[n].dropped:
            n += 1
        if n:
            del self._items[:n]

    def compact(self) -> None:
        """Drop every cancelled item."""
        self._items = [it for it in self._items if not it.dropped]

    def clear(self) -> None:
        self._items.clear()
