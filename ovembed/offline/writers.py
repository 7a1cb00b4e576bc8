"""Output of ``ovembed embed``: one part file per row group while the job runs, merged at the end.

Each part is written to a temporary name and renamed, so a part that exists is whole whatever
killed the job. ``.parquet``: columns ``id``, ``embedding`` (a fixed-size list of the stored type),
``tokens`` (and ``text`` with --keep_text), one row group per part. ``.npy``: the ``[rows, dims]``
array, with the ids in ``<output>.ids.jsonl``. ``.jsonl``: ``{"id", "embedding", "tokens"}`` lines.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ovembed.errors import MissingDependency

OUTPUT_FORMATS = ("parquet", "npy", "jsonl")


def output_format(path: Path) -> str:
    fmt = path.suffix.lower().lstrip(".")
    return fmt if fmt in OUTPUT_FORMATS else "jsonl"


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependency("Parquet output needs pyarrow: pip install 'ovembed[corpus]'") from None
    return pa, pq


@dataclass(frozen=True)
class Rows:
    """One row group's output: ids, vectors (the stored type) and token counts, in input order."""

    ids: list[Any]
    vectors: np.ndarray
    tokens: list[int]
    texts: list[str] | None = None


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _parquet_table(rows: Rows) -> Any:
    pa, _ = _pyarrow()
    flat = pa.array(np.ascontiguousarray(rows.vectors).reshape(-1))
    columns = {"id": pa.array(rows.ids, type=None if rows.ids else pa.string()),
               "embedding": pa.FixedSizeListArray.from_arrays(flat, rows.vectors.shape[1]),
               "tokens": pa.array(rows.tokens, type=pa.int32())}
    if rows.texts is not None:
        columns["text"] = pa.array(rows.texts, type=pa.string())
    return pa.table(columns)


def write_part(path: Path, fmt: str, rows: Rows) -> None:
    """Write one part (atomically)."""
    if fmt == "parquet":
        _, pq = _pyarrow()
        table = _parquet_table(rows)
        _atomic(path, lambda tmp: pq.write_table(table, tmp, row_group_size=max(1, len(rows.ids))))
    elif fmt == "npy":
        def write_npy(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, rows.vectors)
                f.write(b"".join(json.dumps(i).encode() + b"\n" for i in rows.ids))
        _atomic(path, write_npy)
    else:
        def write_jsonl(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                for i, rid in enumerate(rows.ids):
                    line: dict[str, Any] = {"id": rid, "embedding": rows.vectors[i].tolist(), "tokens": rows.tokens[i]}
                    if rows.texts is not None:
                        line["text"] = rows.texts[i]
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
        _atomic(path, write_jsonl)


def merge_parts(parts: Sequence[Path], fmt: str, output: Path, *, rows: int, dims: int, dtype: str) -> None:
    """Concatenate the parts, in order, into ``output`` (atomically), one part in memory at a time."""
    if fmt == "parquet":
        _, pq = _pyarrow()

        def write_parquet(tmp: Path) -> None:
            writer = None
            try:
                for part in parts:
                    table = pq.read_table(part)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table, row_group_size=max(1, table.num_rows))
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:  # no rows at all: an empty file with no columns would mislead
                empty = Rows([], np.empty((0, max(dims, 1)), dtype=np.dtype(dtype)), [])
                pq.write_table(_parquet_table(empty), tmp)
        _atomic(output, write_parquet)
    elif fmt == "npy":
        ids_path = output.with_name(output.name.removesuffix(".npy") + ".ids.jsonl")

        def write_npy(tmp: Path) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=(rows, dims))
            at = 0
            with open(ids_path.with_name(ids_path.name + ".tmp"), "wb") as ids:
                for part in parts:
                    with open(part, "rb") as f:
                        block = np.load(f)
                        out[at:at + len(block)] = block
                        at += len(block)
                        shutil.copyfileobj(f, ids)
            out.flush()
            del out
        _atomic(output, write_npy)
        os.replace(ids_path.with_name(ids_path.name + ".tmp"), ids_path)
    else:
        def write_jsonl(tmp: Path) -> None:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        shutil.copyfileobj(f, out)
        _atomic(output, write_jsonl)
