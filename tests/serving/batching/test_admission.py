"""Admission by expected wait (ovembed/serving/batching/admission.py, FairQueue.tokens_ahead): pure,
with numbers; then the batcher feeding it, on a fake clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ovembed.errors import Overloaded
from ovembed.serving.batching.admission import AdmissionPolicy, Throughput
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.batching.fair_queue import FairQueue
from ovembed.serving.batching.policy import BatchPolicy, Item
from tests.serving.batching.fake_clock import CountingObserver, FakeClock
from tests.serving.batching.test_batcher import FakeEngine, expected, run


def request(lengths: list[int], seq: int = 0) -> list[Item]:
    return [Item(None, i, n, 0.0, seq + i) for i, n in enumerate(lengths)]


# -- the policy -----------------------------------------------------------------------------


def test_admits_up_to_the_limit_and_refuses_past_it() -> None:
    policy = AdmissionPolicy(max_queue_wait=10.0)
    assert policy.decide(tokens_ahead=1000, tokens_per_second=100.0).admit  # 10 s: at the limit
    refused = policy.decide(tokens_ahead=2500, tokens_per_second=100.0)  # 25 s
    assert not refused.admit and refused.wait == pytest.approx(25.0) and refused.retry_after == 15


def test_retry_after_is_between_one_second_and_a_minute() -> None:
    policy = AdmissionPolicy(max_queue_wait=10.0)
    assert policy.decide(tokens_ahead=1001, tokens_per_second=100.0).retry_after == 1
    assert policy.decide(tokens_ahead=10**9, tokens_per_second=100.0).retry_after == 60


def test_off_unknown_rate_or_nothing_ahead_always_admits() -> None:
    assert AdmissionPolicy(max_queue_wait=0).decide(10**9, 1.0).admit  # 0: off
    assert AdmissionPolicy(max_queue_wait=1).decide(10**9, 0.0).admit  # not measured yet
    assert AdmissionPolicy(max_queue_wait=1).decide(0, 1.0).admit  # a request alone: never refused for its size


# -- the throughput estimate ----------------------------------------------------------------------


def test_throughput_is_weighted_by_tokens() -> None:
    rate = Throughput()
    assert rate.per_stream == 0.0
    rate.observe(10, 0.01)  # a lone query: 1000 tokens/s
    rate.observe(1000, 0.1)  # a full batch: 10000 tokens/s
    assert rate.per_stream == pytest.approx((0.9 * 10 + 1000) / (0.9 * 0.01 + 0.1))
    assert 9000 < rate.per_stream < 10000  # the batch dominates
    assert rate.rate(slots=2) == pytest.approx(2 * rate.per_stream)


def test_throughput_seed_is_soon_outweighed() -> None:
    rate = Throughput.seeded(1600.0)  # the warm-up: 16 tokens in 10 ms
    assert rate.per_stream == pytest.approx(1600.0)
    rate.observe(1024, 0.1)
    assert rate.per_stream > 9000
    assert Throughput.seeded(0.0).per_stream == 0.0  # nothing measured: unknown
    rate.observe(0, 0.0)  # ignored
    assert rate.per_stream > 9000


# -- tokens ahead, in fair order -------------------------------------------------------------


def test_a_query_has_one_document_of_each_request_ahead() -> None:
    queue: FairQueue[Item] = FairQueue()
    queue.push(request([100] * 50))
    queue.push(request([100] * 50, seq=50))
    assert queue.tokens_ahead([7]) == 200  # the head document of each bulk request
    assert queue.tokens_ahead([100] * 3) == 2 * 300  # shares with each up to its own size
    assert queue.tokens_ahead([100] * 80) == 10_000  # all of them
    assert FairQueue[Item]().tokens_ahead([100] * 80) == 0


def test_cancelled_items_are_not_ahead() -> None:
    queue: FairQueue[Item] = FairQueue()
    bulk = request([100] * 10)
    queue.push(bulk)
    bulk[0].job = type("Dead", (), {"cancelled": True})()  # type: ignore[assignment]
    assert queue.tokens_ahead([100] * 10) == 900


# -- the batcher feeds it ---------------------------------------------------------------------


def test_a_bulk_request_is_refused_while_a_query_is_admitted() -> None:
    """At 100 tokens/s, limit 10 s: a second 2000-token request would wait 19 s behind the 1900 tokens
    queued (the running batch is not counted): 429; a query
    arriving behind the same queue waits for ~2 documents (admitted and served)."""
    async def main() -> None:
        engine = FakeEngine(slots=1, auto=False)
        observer = CountingObserver()
        batcher = Batcher(engine, BatchPolicy(max_batch_size=1), max_queue=10_000, clock=FakeClock(),
                          admission=AdmissionPolicy(10.0), observer=observer)
        batcher.throughput = Throughput.seeded(100.0)
        first = asyncio.create_task(batcher.submit([[5] * 100] * 20))
        await asyncio.sleep(0)
        assert batcher.in_flight == 1 and batcher.queued == 19
        with pytest.raises(Overloaded, match="would wait about 19 s in its queue, over the limit of 10 s") as err:
            await batcher.submit([[6] * 100] * 20)
        assert err.value.retry_after == 9 and observer.refused == 1
        assert batcher.queued == 19  # nothing of it was queued
        query = asyncio.create_task(batcher.submit([[7] * 10]))
        while not query.done():
            engine.release()
            await asyncio.sleep(0)
        np.testing.assert_array_equal((await query).embeddings, expected([[7] * 10]))
        assert not first.done()  # the query went before most of the bulk request
        while not first.done():
            engine.release()
            await asyncio.sleep(0)
        assert observer.refused == 1

    run(main())


def test_admission_learns_the_rate_from_completed_batches() -> None:
    async def main() -> None:
        engine = FakeEngine(slots=1)
        batcher = Batcher(engine, BatchPolicy(), max_queue=100, clock=FakeClock())
        assert batcher.rate() == 0.0
        await batcher.submit([[1] * 10] * 4)
        assert batcher.rate() > 0  # measured (FakeEngine takes real time, however little)

    run(main())


def test_the_estimate_starts_from_the_warm_up_measurement() -> None:
    engine = FakeEngine(slots=2)
    engine.warm_tokens_per_second = 1600.0  # type: ignore[attr-defined]  # OpenVINOExecutor.time_inline's
    batcher = Batcher(engine, BatchPolicy(), max_queue=100)
    assert batcher.rate() == pytest.approx(3200.0)
