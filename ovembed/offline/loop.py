"""A private event loop on a daemon thread: the engine's async API for synchronous callers.

The registry, batchers and servables live on this loop exactly as they live on the server's;
any thread may submit coroutines to it (``asyncio.run_coroutine_threadsafe``), so a model is
safe to share between threads and their inputs are batched together.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class EngineLoop:
    """One event loop running on its own thread until :meth:`close`."""

    def __init__(self, name: str = "ovembed-engine") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``work`` on the loop; the future resolves with its result or error."""
        if self._closed:
            work.close()
            raise RuntimeError("the model is closed")
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop and wait for it (not from the loop's own thread)."""
        if threading.current_thread() is self._thread:
            work.close()
            raise RuntimeError("EngineLoop.run called from the engine's own thread")
        future = self.submit(work)
        try:
            return future.result()
        except BaseException:  # KeyboardInterrupt in the caller: drop the work too
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop and join its thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
