"""Request context helpers shared by REST and gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ovembed.errors import ClientGone
from ovembed.serving.api import Timings
from ovembed.serving.context import RequestContext, timing_values


def test_timing_values_are_fractional_milliseconds() -> None:
    values = timing_values(Timings(tokenization=0.0000412, queue=0.003, inference=0.0012345), 0.1)
    assert values == {"x-tokenization-time": "0.041", "x-queue-time": "3",
                      "x-inference-time": "1.234", "x-total-time": "100"}
    assert timing_values(Timings(0.0, 0.0, 0.0), 0.0)["x-total-time"] == "0"


def _guarded(work: Callable[[], Awaitable[str]], *, gone_after: float | None,
             cancel_caller_after: float | None = None) -> tuple[str, list[str]]:
    """Run ``ctx.guard(work())``: the client goes away after ``gone_after`` seconds (None: never),
    the caller is cancelled after ``cancel_caller_after``. (outcome, what happened to the work)."""
    events: list[str] = []

    async def main() -> str:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: events.append(f"loop error: {context['message']}"))

        async def client_gone() -> None:
            if gone_after is None:
                await asyncio.Event().wait()
            await asyncio.sleep(gone_after or 0)

        async def tracked() -> str:
            try:
                return await work()
            except asyncio.CancelledError:
                events.append("work cancelled")
                raise

        ctx = RequestContext("r", client_gone=client_gone)
        caller = asyncio.ensure_future(ctx.guard(tracked()))
        if cancel_caller_after is not None:
            await asyncio.sleep(cancel_caller_after)
            caller.cancel()
        try:
            return await caller
        except ClientGone:
            return "ClientGone"
        except asyncio.CancelledError:
            return "CancelledError"
        except ValueError as exc:
            return f"ValueError {exc}"
        finally:
            await asyncio.sleep(0.01)  # the watcher's callbacks run: none may fail
            events.extend(t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task())

    return asyncio.run(main()), events


async def _slow() -> str:
    await asyncio.sleep(5)
    return "done"


async def _quick() -> str:
    return "done"


async def _fails() -> str:
    raise ValueError("bad input")


def test_guard_returns_the_work_and_leaves_no_task() -> None:
    assert _guarded(_quick, gone_after=None) == ("done", [])


def test_guard_raises_the_works_error() -> None:
    assert _guarded(_fails, gone_after=None) == ("ValueError bad input", [])


def test_guard_client_gone_cancels_the_work() -> None:
    assert _guarded(_slow, gone_after=0.01) == ("ClientGone", ["work cancelled"])


def test_guard_cancelled_caller_cancels_the_work_and_is_not_client_gone() -> None:
    assert _guarded(_slow, gone_after=None, cancel_caller_after=0.01) == ("CancelledError", ["work cancelled"])
