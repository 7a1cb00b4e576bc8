from __future__ import annotations

import mmap
import sys
from pathlib import Path

import numpy as np
import pytest

from ovembed.serving.openvino.weights import pooled_ir, private_weights, release_file_pages, trim_heap


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc/self/maps")
def test_release_file_pages_keeps_contents(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    data = np.arange(1 << 18, dtype=np.float32)  # 1 MB
    data.tofile(path)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = np.frombuffer(mapped, dtype=np.float32)
        assert float(view.sum()) == float(data.sum())  # every page resident
        assert release_file_pages(path) >= data.nbytes
        assert release_file_pages(tmp_path / "other.bin") == 0
        np.testing.assert_array_equal(view, data)  # faulted back in, unchanged
        del view


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_heap_gives_freed_memory_back() -> None:
    """Many small blocks freed stay resident in glibc's heap until trimmed."""

    def resident() -> int:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1])

    blocks = [bytearray(64 * 1024 - 64) for _ in range(1600)]  # ~100 MB below the mmap threshold
    kept = blocks[-1]
    del blocks
    before = resident()
    assert trim_heap() is True
    assert (before - resident()) * mmap.PAGESIZE > 50 * 2**20  # without the trim: no change
    del kept


def test_pooled_ir_is_saved_once(tmp_path: Path) -> None:
    import openvino as ov
    import openvino.opset13 as ops

    source = tmp_path / "model" / "openvino_model.xml"
    x = ops.parameter([-1, 4], np.float32, name="x")
    weights = ops.constant(np.ones((4, 3), dtype=np.float32))
    model = ov.Model([ops.result(ops.matmul(x, weights, False, False))], [x], "m")
    ov.save_model(model, source)
    options = {"pooling": "MEAN", "normalize": True}
    first = pooled_ir(model, "v1", tmp_path / "cache", options)
    assert first.is_file() and first.with_suffix(".bin").is_file()
    mtime = first.stat().st_mtime_ns
    assert pooled_ir(model, "v1", tmp_path / "cache", options) == first
    assert first.stat().st_mtime_ns == mtime
    other = pooled_ir(model, "v1", tmp_path / "cache", {**options, "normalize": False})
    assert other != first
    assert pooled_ir(model, "v2", tmp_path / "cache", options) not in (first, other)
    compiled = ov.Core().compile_model(str(first), "CPU")
    out = compiled(np.ones((2, 4), dtype=np.float32))[0]
    np.testing.assert_allclose(out, np.full((2, 3), 4.0))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc/self/maps")
def test_private_weights_survive_changes_to_the_source(tmp_path: Path) -> None:
    import hashlib

    source = tmp_path / "model.bin"
    data = np.arange(1 << 18, dtype=np.float32)
    data.tofile(source)
    scratch = tmp_path / "scratch"
    with private_weights(source, scratch) as copy:
        assert copy.size == data.nbytes
        assert copy.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        with copy.path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = np.frombuffer(mapped, dtype=np.float32)
            source.write_bytes(b"\0" * 100)  # truncated and overwritten in place
            np.testing.assert_array_equal(view, data)
            copy.path.unlink()  # what the end of the block does: the mapping outlives the name
            assert release_file_pages(copy.path) >= data.nbytes  # shown as "(deleted)"
            np.testing.assert_array_equal(view, data)
            del view
    assert list(scratch.iterdir()) == []  # nothing left behind


def test_private_weights_cleans_up_when_loading_fails(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"1234")
    with pytest.raises(RuntimeError), private_weights(source, tmp_path / "scratch") as copy:
        assert copy.path.read_bytes() == b"1234"
        raise RuntimeError("compile failed")
    assert list((tmp_path / "scratch").iterdir()) == []
    with pytest.raises(FileNotFoundError), private_weights(tmp_path / "missing.bin", tmp_path):
        pass
