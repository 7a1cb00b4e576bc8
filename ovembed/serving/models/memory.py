"""Give the memory of an unloaded model back to the operating system.

Unloading a model drops its compiled model, infer requests and tokenizer (once nothing references them:
see ``executor._weakly``), but glibc's malloc may keep the freed heap pages for reuse. Measured on
MiniLM-L6 fp32 with ``python -m benchmarks.idle_rss --cycles 6 --requests 30`` (in-process registry,
batches of 8 documents; a loaded 2-core machine, so figures vary by tens of MB between runs): RSS 87 MB
with OpenVINO, its CPU plugin and the tokenizer extension loaded but no model; 311-339 MB loaded; right
after each unload 158, 327, 172, 193, 175, 176 MB without a trim (whether glibc returns the pages by itself
depends on how its arenas fragmented: in cycle 2 it kept all of them), and 151, 145, 153, 179, 156, 164 MB
after ``malloc_trim(0)``: flat over the cycles, no growth. So after an idle unload the registry calls
``malloc_trim(0)`` where the C library has it (glibc); elsewhere (musl, macOS, Windows) this does nothing.
The 60-90 MB above the no-model level was not traced further; the runtime keeps per-process state once a
model has run (thread pools, kernel caches).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
from collections.abc import Callable

log = logging.getLogger("ovembed.serving")


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]  # type: ignore[attr-defined]
    trim.restype = ctypes.c_int  # type: ignore[attr-defined]
    return trim


def release_freed_memory() -> bool:
    """Collect garbage, then return free heap pages to the system (glibc); whether it could trim."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
