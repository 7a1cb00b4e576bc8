"""Request deadlines in the batcher (ovembed.serving.api.DEADLINE), on a fake clock: work not started
by the deadline is never computed, a late result is discarded, the request fails at once."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy as np
import pytest

from ovembed.errors import DeadlineExceeded, describe, public_message
from ovembed.serving.api import DEADLINE
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.batching.policy import BatchPolicy
from tests.serving.batching.fake_clock import CountingObserver, FakeClock
from tests.serving.batching.test_batcher import FakeEngine, expected, run

T = TypeVar("T")


def with_deadline(deadline: float, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """``work`` as a task whose request deadline is ``deadline`` (what the transports set)."""
    ctx = contextvars.copy_context()
    ctx.run(DEADLINE.set, deadline)
    return asyncio.get_running_loop().create_task(work, context=ctx)


def setup(slots: int = 1) -> tuple[FakeEngine, FakeClock, CountingObserver, Batcher]:
    engine, clock, observer = FakeEngine(slots=slots, auto=False), FakeClock(), CountingObserver()
    return engine, clock, observer, Batcher(engine, BatchPolicy(), max_queue=100, clock=clock, observer=observer)


def test_queued_work_past_its_deadline_is_dropped_and_never_computed() -> None:
    async def main() -> None:
        engine, clock, observer, batcher = setup()
        running = asyncio.create_task(batcher.submit([[1]]))  # occupies the only slot
        await asyncio.sleep(0)
        doomed = with_deadline(5.0, batcher.submit([[999] * 3] * 4))
        patient = asyncio.create_task(batcher.submit([[2, 3]]))  # no deadline
        await asyncio.sleep(0)
        assert batcher.queued == 5
        clock.advance(4.9)
        assert not doomed.done()
        clock.advance(5.0)
        with pytest.raises(DeadlineExceeded, match="Deadline exceeded: the request's time limit"):
            await doomed
        assert batcher.queued == 1 and observer.expired == 1
        engine.auto = True
        engine.release()
        await running
        np.testing.assert_array_equal((await patient).embeddings, expected([[2, 3]]))
        assert not any((b == 999).any() for b in engine.batches)  # never computed

    run(main())


def test_a_running_batch_finishes_but_its_late_result_is_discarded() -> None:
    async def main() -> None:
        engine, clock, observer, batcher = setup()
        late = with_deadline(5.0, batcher.submit([[4, 5]]))
        await asyncio.sleep(0)
        assert batcher.in_flight == 1  # started before its deadline
        clock.advance(6.0)
        with pytest.raises(DeadlineExceeded):
            await late  # answered at the deadline, not when the batch ends
        assert batcher.in_flight == 1
        engine.release()  # the batch finishes; nobody gets its rows
        await asyncio.sleep(0)
        assert batcher.in_flight == 0 and observer.expired == 1
        engine.auto = True
        np.testing.assert_array_equal((await batcher.submit([[6]])).embeddings, expected([[6]]))

    run(main())


def test_a_result_arriving_after_the_deadline_before_its_timer_is_discarded() -> None:
    async def main() -> None:
        engine, clock, observer, batcher = setup()
        late = with_deadline(5.0, batcher.submit([[4, 5]]))
        await asyncio.sleep(0)
        clock.now = 7.0  # time passed; the timer has not run
        engine.release()
        with pytest.raises(DeadlineExceeded):
            await late
        assert observer.expired == 1

    run(main())


def test_a_request_already_past_its_deadline_queues_nothing() -> None:
    async def main() -> None:
        engine, clock, observer, batcher = setup()
        clock.now = 10.0
        with pytest.raises(DeadlineExceeded):
            await with_deadline(10.0, batcher.submit([[1]]))
        assert batcher.queued == 0 and not engine.batches and observer.expired == 1

    run(main())


def test_a_request_done_in_time_is_unaffected() -> None:
    async def main() -> None:
        engine, clock, observer, batcher = setup()
        engine.auto = True
        res = await with_deadline(5.0, batcher.submit([[1, 2], [3]]))
        np.testing.assert_array_equal(res.embeddings, expected([[1, 2], [3]]))
        clock.advance(10.0)  # its timer was cancelled
        assert observer.expired == 0

    run(main())


def test_deadline_exceeded_is_a_504_with_its_message() -> None:
    kind = describe(DeadlineExceeded("Deadline exceeded: x"))
    assert (kind.status, kind.type, kind.code, kind.grpc) == (504, "timeout_error", "deadline_exceeded",
                                                              "DEADLINE_EXCEEDED")
    assert public_message(DeadlineExceeded("Deadline exceeded: x")) == "Deadline exceeded: x"


class _Job:
    cancelled = False

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline


def test_the_policy_never_starts_an_item_past_its_deadline() -> None:
    from ovembed.serving.batching.policy import Item

    late, on_time = _Job(5.0), _Job(None)
    queue = [Item(late, 0, 10, 0.0, 0), Item(on_time, 0, 10, 0.0, 1)]  # type: ignore[arg-type]
    policy = BatchPolicy(pad_multiple=1)
    before = policy.decide(queue, now=4.0, in_flight=0, free_slots=1).batch
    assert before is not None and [it.seq for it in before] == [0, 1]
    after = policy.decide(queue, now=5.0, in_flight=0, free_slots=1).batch
    assert after is not None and [it.seq for it in after] == [1]
