"""The batching policy with a controllable clock, and the batcher with a fake engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import numpy as np
import pytest

from ovembed.errors import ModelNotReady, Overloaded
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.batching.policy import BatchPolicy, Item

T = TypeVar("T")


def items(lengths: list[int], *, arrival: float = 0.0, step: float = 0.0) -> list[Item]:
    return [Item(None, i, n, arrival + i * step, i) for i, n in enumerate(lengths)]


def padded(batch: list[Item]) -> int:
    return max(it.length for it in batch) * len(batch)


def exact(**options: Any) -> BatchPolicy:
    """A policy without width rounding, so token arithmetic in the tests is exact."""
    return BatchPolicy(**{"pad_multiple": 1, **options})


# -- policy -------------------------------------------------------------------------------


def test_token_budget_and_size_are_respected() -> None:
    policy = exact(max_batch_tokens=1000, max_batch_size=64, max_wait=0.002)
    batch = policy.decide(items([100] * 30), now=0.0, in_flight=0, free_slots=1).batch
    assert batch is not None and len(batch) == 10 and padded(batch) <= 1000

    policy = exact(max_batch_tokens=100_000, max_batch_size=8, max_wait=0.002)
    batch = policy.decide(items([10] * 30), now=0.0, in_flight=0, free_slots=1).batch
    assert batch is not None and len(batch) == 8


def test_batches_group_similar_lengths_around_the_oldest() -> None:
    lengths = [20, 300, 21, 290, 19, 310, 22, 18, 305, 23]
    policy = exact(max_batch_tokens=200, max_batch_size=64, max_wait=0.002)
    batch = policy.decide(items(lengths), now=0.0, in_flight=0, free_slots=1).batch
    assert batch is not None
    assert batch[0].seq == 0 or any(it.seq == 0 for it in batch)  # the oldest always goes
    assert sorted(it.length for it in batch) == [18, 19, 20, 21, 22, 23]  # the short ones only
    assert [it.length for it in batch] == sorted(it.length for it in batch)  # length-sorted


def test_padding_waste_is_minimised_when_the_budget_binds() -> None:
    # Oldest is 100; neighbours 99 (waste 1) and 180 (waste 80 x n) -> takes the 99s first.
    policy = exact(max_batch_tokens=400, max_batch_size=64, max_wait=0.002)
    batch = policy.decide(items([100, 180, 99, 99, 10]), now=0.0, in_flight=0,
                          free_slots=1).batch
    assert batch is not None
    assert sorted(it.length for it in batch) == [10, 99, 99, 100]
    assert padded(batch) == 400


def test_zero_wait_when_idle() -> None:
    policy = exact(max_batch_tokens=16384, max_batch_size=64, max_wait=0.5)
    decision = policy.decide(items([5]), now=0.0, in_flight=0, free_slots=2)
    assert decision.batch is not None and len(decision.batch) == 1


def test_max_wait_is_honoured_when_busy() -> None:
    policy = exact(max_batch_tokens=16384, max_batch_size=64, max_wait=0.004)
    queue = items([5, 6, 7], arrival=10.0, step=0.001)
    early = policy.decide(queue, now=10.001, in_flight=1, free_slots=1)
    assert early.batch is None and early.wake_at == pytest.approx(10.004)
    late = policy.decide(queue, now=10.004, in_flight=1, free_slots=1)
    assert late.batch is not None and len(late.batch) == 3


def test_full_batch_goes_without_waiting_when_busy() -> None:
    policy = exact(max_batch_tokens=16384, max_batch_size=4, max_wait=10.0)
    decision = policy.decide(items([5] * 6), now=0.0, in_flight=1, free_slots=1)
    assert decision.batch is not None and len(decision.batch) == 4
    policy = exact(max_batch_tokens=1000, max_batch_size=64, max_wait=10.0)
    decision = policy.decide(items([250] * 8), now=0.0, in_flight=1, free_slots=1)
    assert decision.batch is not None and padded(decision.batch) == 1000


def test_nothing_happens_without_a_free_infer_request() -> None:
    policy = exact()
    decision = policy.decide(items([5] * 10), now=100.0, in_flight=2, free_slots=0)
    assert decision.batch is None and decision.wake_at is None
    assert policy.decide([], now=0.0, in_flight=0, free_slots=1).batch is None


def test_big_request_is_split_across_infer_requests() -> None:
    policy = exact(max_batch_tokens=16384, max_batch_size=64, max_wait=0.002)
    queue = items([500] * 32)
    batch = policy.decide(queue, now=0.0, in_flight=0, free_slots=2).batch
    assert batch is not None and len(batch) == 16  # half each: both streams busy
    batch = policy.decide(queue, now=0.0, in_flight=1, free_slots=1).batch
    assert batch is not None and len(batch) == 16  # the other half goes when a stream frees
    batch = policy.decide(queue, now=0.0, in_flight=0, free_slots=1).batch
    assert batch is not None and len(batch) == 32 and padded(batch) <= 16384
    small = exact(max_batch_tokens=4096, max_batch_size=64, max_wait=0.002)
    batch = small.decide(queue, now=0.0, in_flight=0, free_slots=1).batch
    assert batch is not None and len(batch) == 8


def test_oldest_item_goes_alone_even_over_budget() -> None:
    policy = exact(max_batch_tokens=100, max_batch_size=64, max_wait=0.002)
    batch = policy.decide(items([512, 3, 3]), now=0.0, in_flight=0, free_slots=1).batch
    assert batch is not None and [it.length for it in batch] == [512]


def test_cancelled_items_are_skipped() -> None:
    class Dead:
        cancelled = True

    queue = items([5, 6, 7])
    queue[0].job = Dead()  # type: ignore[assignment]
    batch = exact().decide(queue, now=0.0, in_flight=0, free_slots=1).batch
    assert batch is not None and sorted(it.seq for it in batch) == [1, 2]


def test_widths_round_up_to_the_pad_multiple_within_budget() -> None:
    policy = BatchPolicy(max_batch_tokens=1000, max_batch_size=64, max_wait=0.002, pad_multiple=8)
    assert (policy.width(1), policy.width(8), policy.width(9)) == (8, 8, 16)
    batch = policy.decide(items([100] * 30), now=0.0, in_flight=0, free_slots=1).batch
    assert batch is not None and len(batch) == 9 and policy.width(100) * len(batch) <= 1000


# -- batcher with a fake engine --------------------------------------------------------------


class FakeEngine:
    """Row r of the output is [sum of real ids, length, first id]; completes when released."""

    dimensions = 3
    pad_lone = True  # the executor's measurement at load (OpenVINOExecutor: _time_inline)

    def __init__(self, slots: int = 1, *, auto: bool = True, inline: bool = False) -> None:
        self.slots = slots
        self.auto = auto
        self.inline = inline  # on_done before start() returns, as OpenVINOExecutor's inline path
        self.batches: list[np.ndarray] = []
        self.held: list[Callable[[], None]] = []
        self.fail_next = False

    def start(self, input_ids: np.ndarray, attention_mask: np.ndarray,
              on_done: Callable[[Any], None]) -> None:
        self.batches.append(input_ids.copy())
        out = np.stack([(input_ids * attention_mask).sum(1), attention_mask.sum(1),
                        input_ids[:, 0]], axis=1).astype(np.float32)
        result: Any = RuntimeError("boom") if self.fail_next else out
        self.fail_next = False
        loop = asyncio.get_running_loop()
        if self.inline:
            on_done(result)
        elif self.auto:
            loop.call_soon(on_done, result)
        else:
            self.held.append(lambda: on_done(result))

    def release(self) -> None:
        held, self.held = self.held, []
        for done in held:
            done()


def expected(docs: list[list[int]]) -> np.ndarray:
    return np.array([[sum(d), len(d), d[0]] for d in docs], dtype=np.float32)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_results_go_back_to_the_right_request_in_order() -> None:
    rng = np.random.default_rng(0)

    async def main() -> None:
        engine = FakeEngine(slots=2)
        batcher = Batcher(engine, BatchPolicy(max_batch_tokens=200, max_batch_size=7,
                                              max_wait=0.001), max_queue=10_000, max_width=61)
        requests = [[rng.integers(1, 1000, rng.integers(1, 62)).tolist()
                     for _ in range(rng.integers(1, 20))] for _ in range(40)]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        for docs, res in zip(requests, results, strict=True):
            np.testing.assert_array_equal(res.embeddings, expected(docs))
        assert len(engine.batches) > 10  # really split and mixed
        assert all((b.shape[0] <= 7 and b.size <= 200) or b.shape[0] == 1 for b in engine.batches)
        assert batcher.queued == 0 and batcher.in_flight == 0

    run(main())


def test_an_engine_that_finishes_inside_start() -> None:
    """on_done from within start() (OpenVINOExecutor's inline path): results are right, and thousands
    of queued batches finished that way neither nest (one _schedule inside another) nor stall."""
    async def main() -> None:
        engine = FakeEngine(slots=1, inline=True)
        batcher = Batcher(engine, BatchPolicy(max_batch_size=1), max_queue=10_000)
        alone = await batcher.submit([[4, 5, 6]])
        np.testing.assert_array_equal(alone.embeddings, expected([[4, 5, 6]]))
        docs = [[i % 997 + 1] * (i % 5 + 1) for i in range(3000)]  # 3000 batches of one, queued at once
        results = await asyncio.gather(batcher.submit(docs), *(batcher.submit([d]) for d in docs[:50]))
        np.testing.assert_array_equal(results[0].embeddings, expected(docs))
        for doc, res in zip(docs[:50], results[1:], strict=True):
            np.testing.assert_array_equal(res.embeddings, expected([doc]))
        assert len(engine.batches) == 3051 and batcher.queued == 0 and batcher.in_flight == 0
        engine.fail_next = True
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit([[7]])
        assert (await batcher.submit([[8]])).embeddings[0, 0] == 8  # and it goes on

    run(main())


def test_idle_engine_starts_at_once_and_busy_engine_waits() -> None:
    async def main() -> None:
        engine = FakeEngine(slots=2, auto=False)
        batcher = Batcher(engine, BatchPolicy(max_wait=0.05), max_queue=100)
        first = asyncio.create_task(batcher.submit([[1, 2]]))
        await asyncio.sleep(0)
        assert len(engine.batches) == 1  # idle: no wait
        second = asyncio.create_task(batcher.submit([[3]]))
        await asyncio.sleep(0.01)
        assert len(engine.batches) == 1  # busy: waits to fill the batch
        third = asyncio.create_task(batcher.submit([[4, 5, 6]]))
        await asyncio.sleep(0.1)
        assert len(engine.batches) == 2 and engine.batches[1].shape[0] == 2  # 2nd + 3rd
        engine.release()
        _, b, c = await asyncio.gather(first, second, third)
        np.testing.assert_array_equal(c.embeddings, expected([[4, 5, 6]]))
        assert b.queue_seconds >= 0.04

    run(main())


def test_queue_limit_gives_overloaded_then_serves_again() -> None:
    async def main() -> None:
        engine = FakeEngine(slots=1, auto=False)
        batcher = Batcher(engine, BatchPolicy(), max_queue=4)
        running = asyncio.create_task(batcher.submit([[1]]))  # dispatched: not queued
        await asyncio.sleep(0)
        queued = asyncio.create_task(batcher.submit([[2]] * 4))
        await asyncio.sleep(0)
        assert batcher.queued == 4
        with pytest.raises(Overloaded, match="overloaded"):
            await batcher.submit([[3]])
        engine.release()
        await asyncio.sleep(0)
        engine.release()
        await asyncio.gather(running, queued)
        engine.auto = True
        res = await batcher.submit([[7, 8]] * 4)
        np.testing.assert_array_equal(res.embeddings, expected([[7, 8]] * 4))

    run(main())


def test_cancelled_request_work_is_dropped() -> None:
    async def main() -> None:
        engine = FakeEngine(slots=1, auto=False)
        batcher = Batcher(engine, BatchPolicy(), max_queue=100)
        first = asyncio.create_task(batcher.submit([[1]]))
        await asyncio.sleep(0)
        doomed = asyncio.create_task(batcher.submit([[999, 999]] * 5))
        await asyncio.sleep(0)
        assert batcher.queued == 5
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert batcher.queued == 0
        engine.auto = True
        engine.release()
        await first
        await batcher.submit([[5]])
        assert not any((b == 999).any() for b in engine.batches)

    run(main())


def test_engine_failure_fails_its_requests_and_the_batcher_goes_on() -> None:
    async def main() -> None:
        engine = FakeEngine(slots=1)
        batcher = Batcher(engine, BatchPolicy(), max_queue=100)
        engine.fail_next = True
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit([[1, 2]])
        res = await batcher.submit([[1, 2]])
        np.testing.assert_array_equal(res.embeddings, expected([[1, 2]]))

    run(main())


def test_stop_drains_then_refuses() -> None:
    async def main() -> None:
        engine = FakeEngine(slots=1)
        batcher = Batcher(engine, BatchPolicy(), max_queue=100)
        pending = [asyncio.create_task(batcher.submit([[i + 1]] * 3)) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.stop(timeout=5)
        assert all(t.done() and t.exception() is None for t in pending)
        with pytest.raises(ModelNotReady):
            await batcher.submit([[1]])

    run(main())


def test_a_small_request_finishes_before_a_large_one_it_arrives_during() -> None:
    async def main() -> None:
        engine = FakeEngine(slots=1, auto=False)
        batcher = Batcher(engine, BatchPolicy(max_batch_tokens=256, max_batch_size=64, max_wait=0.001),
                          max_queue=10_000)
        large = asyncio.ensure_future(batcher.submit([[5] * 30 for _ in range(512)]))  # noqa: RUF006 (awaited below)
        await asyncio.sleep(0)
        engine.release()  # first large batch done
        await asyncio.sleep(0)
        query = asyncio.create_task(batcher.submit([[1, 2, 3]]))
        await asyncio.sleep(0)
        rounds = 0
        while not query.done():
            engine.release()
            await asyncio.sleep(0.002)
            rounds += 1
        assert not large.done() and rounds <= 3  # about one batch, not the ~60 left of the large
        np.testing.assert_array_equal(query.result().embeddings, expected([[1, 2, 3]]))
        while not large.done():
            engine.release()
            await asyncio.sleep(0.001)
        np.testing.assert_array_equal((await large).embeddings, expected([[5] * 30] * 512))

    run(main())


def test_overloaded_says_when_to_retry() -> None:
    async def main() -> None:
        engine = FakeEngine(slots=1, auto=False)
        batcher = Batcher(engine, BatchPolicy(max_batch_size=1), max_queue=4)
        running = asyncio.create_task(batcher.submit([[1]]))  # in flight
        await asyncio.sleep(0)
        queued = asyncio.create_task(batcher.submit([[1]] * 4))  # fills the queue
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as err:
            await batcher.submit([[1]])
        assert err.value.retry_after is not None and 1 <= err.value.retry_after <= 60
        while not queued.done():
            engine.release()
            await asyncio.sleep(0.001)
        await running

    run(main())


@pytest.mark.parametrize(("pad_lone", "lone_shape"), [(True, (1, 8)), (False, (1, 5))])
def test_a_lone_document_is_padded_as_its_engine_measured(pad_lone: bool, lone_shape: tuple[int, int]) -> None:
    """pad_lone (set per model from a measurement at load): padded widths change shape less often
    (OpenVINO re-prepares its graph on every change), exact ones compute less; batches always pad."""
    async def main() -> None:
        engine = FakeEngine(slots=1, auto=False)
        engine.pad_lone = pad_lone
        batcher = Batcher(engine, BatchPolicy(pad_multiple=8, max_wait=0.05), max_queue=100)
        first = asyncio.create_task(batcher.submit([[5, 6, 7, 8, 9]]))
        await asyncio.sleep(0)
        rest = asyncio.create_task(batcher.submit([[1, 2, 3], [4] * 9]))
        await asyncio.sleep(0)
        engine.release()
        lone = await first
        await asyncio.sleep(0.1)
        engine.release()
        res = await rest
        assert [b.shape for b in engine.batches] == [lone_shape, (2, 16)]
        np.testing.assert_array_equal(engine.batches[0][0, :5], [5, 6, 7, 8, 9])
        assert not engine.batches[0][0, 5:].any()
        np.testing.assert_array_equal(lone.embeddings, expected([[5, 6, 7, 8, 9]]))
        np.testing.assert_array_equal(res.embeddings, expected([[1, 2, 3], [4] * 9]))

    run(main())


def test_a_lone_document_is_not_padded_past_the_model_maximum() -> None:
    async def main() -> None:
        engine = FakeEngine(slots=1)
        batcher = Batcher(engine, BatchPolicy(pad_multiple=8), max_queue=100, max_width=10)
        await batcher.submit([[1] * 9])
        await batcher.submit([[1] * 10])
        assert [b.shape for b in engine.batches] == [(1, 10), (1, 10)]

    run(main())
