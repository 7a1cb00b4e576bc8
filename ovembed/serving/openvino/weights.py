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
- Files under a served model may change at any time (``cp`` over the .bin, ``truncate``,
  ``rm``). A mapped file that shrinks or changes under the process faults (SIGBUS) on the next
  page read, taking every model down, so serving never maps the repository's file:
  :func:`private_weights` copies the .bin into a private file (in ``--cache_dir`` or the
  temporary folder), the model is read from that copy, and the copy is unlinked once loaded.
  The mapping stays valid and no other process can reach the file by name any more. The cost
  is disk (one copy per served version, freed with it), not RSS: the pages stay file-backed and
  :func:`release_file_pages` drops them as before.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ovembed.layout import MODEL_XML

if TYPE_CHECKING:
    import openvino as ov

_MADV_DONTNEED = 4
_POOLED_DIR = "ovembed-pooled"
_POOLED_FORMAT = 2  # bump when ovembed.heads.embeddings changes the graph it appends
_CHUNK = 1 << 20
_DELETED = " (deleted)"  # how /proc/self/maps shows a mapped file that was unlinked


@dataclass(frozen=True)
class PrivateWeights:
    """A private copy of a model's .bin: ``path`` (unlinked when the load ends) and the
    ``sha256`` of its content (the version of the weights actually served)."""

    path: Path
    sha256: str
    size: int


@contextmanager
def private_weights(source: Path, scratch: Path | None = None) -> Iterator[PrivateWeights]:
    """Copy ``source`` into a private file under ``scratch`` (default: the temporary folder)
    for the duration; the copy is unlinked on exit, also when loading fails.

    Map the copy (read the model from it) inside the block: the mapping outlives the name.
    Raises ``OSError`` when ``source`` cannot be read (missing, a folder, unreadable).
    """
    folder = Path(scratch) if scratch is not None else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src:
        fd, name = tempfile.mkstemp(prefix=".ovembed-weights-", suffix=".bin", dir=folder)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
            os.chmod(path, 0o400)
            yield PrivateWeights(path, digest.hexdigest(), size)
        finally:
            path.unlink(missing_ok=True)


def pooled_ir(model: ov.Model, content: str, cache_dir: Path, options: dict[str, object]) -> Path:
    """The IR file of ``model`` (the served IR plus pooling), saved once under ``cache_dir``.

    Keyed by ``content`` (what identifies the source: the checksums of its .xml and .bin),
    ``options`` (pooling, normalisation) and the OpenVINO version, so a re-exported model gets
    a new copy. Written to a temporary folder and renamed into place: a crash never leaves half
    an IR behind. ``--cache_dir`` belongs to the server: do not edit its files while it runs.
    """
    import openvino as ov

    key = json.dumps([_POOLED_FORMAT, ov.get_version(), content, options], sort_keys=True,
                     default=str)
    folder = Path(cache_dir) / _POOLED_DIR / hashlib.sha256(key.encode()).hexdigest()[:20]
    target = folder / MODEL_XML
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
    targets |= {t + _DELETED for t in targets}
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


def trim_heap() -> bool:
    """Give the C heap's free memory back to the system (glibc ``malloc_trim``): what a model
    freed at load (static-shape copies its timing dropped) would otherwise stay resident, since
    glibc keeps freed chunks for reuse. Best effort: False where there is no ``malloc_trim``."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    malloc_trim(0)
    return True
