"""Give the memory of an unloaded model back to the operating system.

Unloading a model drops its compiled model, infer requests and tokenizer (once nothing references them:
see ``OpenVINOExecutor.close``), but glibc's malloc may keep the freed heap pages for reuse. Measured on
MiniLM-L6 fp32 with ``python -m benchmarks.idle_rss --cycles 3`` (in-process registry, 50 batches of 8
documents per cycle; a loaded 2-core machine, so the figures vary by a few tens of MB between runs): RSS
87 MB with OpenVINO, its CPU plugin and the tokenizer extension loaded but no model; 310-337 MB loaded;
after the unload 155, 175 and 337 MB without a trim (whether glibc returns the pages by itself depends on
how the arenas fragmented), 149, 161 and 176 MB after ``malloc_trim(0)``. So after an idle unload the
registry calls ``malloc_trim(0)`` where the C library has it (glibc); elsewhere (musl, macOS, Windows)
this does nothing. What stays above the no-model level (60-90 MB, a little more each cycle in that run) was
not traced further; the runtime keeps per-process state once a model has run (thread pools, kernel caches).
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
