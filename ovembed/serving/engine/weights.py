"""Where a served model's weights live in memory, and keeping only one copy resident.

Measured on MiniLM fp32 (90 MB .bin; the CPU plugin repacks ~40 MB of it into its own
buffers at compile time):

- Compiling an in-memory ``ov.Model`` with ``CACHE_DIR`` hashes every weight (the whole
  mmapped .bin becomes resident) and then maps the cached blob, which holds a second copy of
  the weights: peak RSS at load 307 MB. Compiling the *file* of the pooled model instead
  (:func:`pooled_ir`, saved once into the cache folder) is hashed by path, and with
  ``CACHE_MODE OPTIMIZE_SIZE`` the blob holds no weights (0.4 MB): one copy mapped, 211 MB.
- OpenVINO keeps the .bin mapped for the compiled model's life, and compiling touched all of
  it: :func:`release_file_pages` drops those pages from the RSS (86 MB for MiniLM); inference
  reads back ~2 MB of them plus the embedding rows of the tokens it sees.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import openvino as ov

_MADV_DONTNEED = 4
_POOLED_DIR = "ovembed-pooled"
_POOLED_FORMAT = 1  # bump when ovembed.heads.embeddings changes the graph it appends


def pooled_ir(model: ov.Model, source_xml: Path, cache_dir: Path, options: dict[str, object]) -> Path:
    """The IR file of ``model`` (``source_xml`` plus pooling), saved once under ``cache_dir``.

    Keyed by the source files' path, size and modification time, ``options`` (pooling,
    normalisation) and the OpenVINO version, so a re-exported model gets a new copy. Written to
    a temporary folder and renamed into place: a crash never leaves half an IR behind.
    """
    import openvino as ov

    source_xml = Path(source_xml).resolve()
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns)
             for p in (source_xml, source_xml.with_suffix(".bin")) if p.exists()]
    key = json.dumps([_POOLED_FORMAT, ov.get_version(), stats, options], sort_keys=True,
                     default=str)
    folder = Path(cache_dir) / _POOLED_DIR / hashlib.sha256(key.encode()).hexdigest()[:20]
    target = folder / "openvino_model.xml"
    if target.is_file() and target.with_suffix(".bin").is_file():
        return target
    temporary = folder.with_name(f".{folder.name}.{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        ov.save_model(model, temporary / target.name, compress_to_fp16=False)
        try:
            os.replace(temporary, folder)
        except OSError:  # another process saved the same copy first
            if not target.is_file():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target


def release_file_pages(*paths: Path) -> int:
    """Drop this process's resident pages of read-only mappings of ``paths``; returns the
    bytes of the mappings advised.

    ``MADV_DONTNEED`` on a read-only file mapping only unmaps pages: their contents cannot
    differ from the file, and a later read faults them back in from the page cache (a minor
    fault, no disk read while the page cache holds them). Best effort: Linux only, 0 elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return 0
    targets = {str(Path(p).resolve()) for p in paths}
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = maps.readlines()
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    released = 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[5].rstrip("\n") not in targets or "w" in fields[1]:
            continue
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if madvise(low, high - low, _MADV_DONTNEED) == 0:
            released += high - low
    return released
