"""Fair order across requests, driven by the pure policy with a controllable clock."""

from __future__ import annotations

from ovembed.serving.batching.fair_queue import FairQueue
from ovembed.serving.batching.policy import BatchPolicy, Item


class _Job:
    cancelled = False
    deadline = None


def request(lengths: list[int], seq: int, arrival: float = 0.0) -> list[Item]:
    job = _Job()
    return [Item(job, i, n, arrival, seq + i) for i, n in enumerate(lengths)]  # type: ignore[arg-type]


def drain(queue: FairQueue[Item], policy: BatchPolicy, stop: set[int]) -> int:
    """Dispatch batches one at a time (one infer request) until a batch holds an item whose
    seq is in ``stop``; returns how many batches that took."""
    batches = 0
    while queue:
        decision = policy.decide(queue, now=0.0, in_flight=0, free_slots=1)
        assert decision.batch is not None
        queue.remove(decision.batch)
        batches += 1
        if stop & {it.seq for it in decision.batch}:
            return batches
    raise AssertionError("never dispatched")


def test_a_query_behind_a_bulk_request_waits_about_one_batch() -> None:
    policy = BatchPolicy(max_batch_tokens=2048, max_batch_size=64, pad_multiple=8)
    queue: FairQueue[Item] = FairQueue()
    queue.push(request([250] * 2048, seq=0))
    for _ in range(3):  # the bulk request is being served
        decision = policy.decide(queue, now=0.0, in_flight=0, free_slots=1)
        assert decision.batch is not None
        queue.remove(decision.batch)
    queue.push(request([7], seq=5000, arrival=1.0))
    assert queue[0].seq == 5000 or queue[1].seq == 5000
    assert drain(queue, policy, {5000}) <= 2  # FIFO: after all ~256 remaining bulk batches


def test_strict_arrival_order_within_a_request_and_turns_between_equal_requests() -> None:
    queue: FairQueue[Item] = FairQueue()
    queue.push(request([10] * 4, seq=0))
    queue.push(request([10] * 4, seq=100))
    order = [it.seq for it in queue]
    assert order == [0, 100, 1, 101, 2, 102, 3, 103]  # equal sizes: alternate
    own = [it.seq for it in queue if it.seq < 100]
    assert own == sorted(own)


def test_tokens_not_documents_are_shared() -> None:
    queue: FairQueue[Item] = FairQueue()
    queue.push(request([100] * 3, seq=0))  # tags 0, 100, 200
    queue.push(request([10] * 12, seq=10))  # tags 0, 10, ..., 110
    first_six = [it.seq for it in queue][:6]
    assert first_six == [0, 10, 11, 12, 13, 14]  # ten short ones take the time of one long one


def test_cancelled_items_are_compacted_and_virtual_time_moves_on() -> None:
    queue: FairQueue[Item] = FairQueue()
    bulk = request([50] * 10, seq=0)
    queue.push(bulk)
    queue.remove(bulk[:4])
    assert queue.virtual_time == bulk[4].tag == 200
    bulk[0].job.cancelled = True  # type: ignore[union-attr]
    queue.compact()
    assert len(queue) == 0 and queue.virtual_time == 150  # empty: where service had got to
    late = request([5], seq=20)
    queue.push(late)
    assert late[0].tag == 150
