"""Corpus readers for ``ovembed embed``: stream ``(id, text)`` rows in input order, a group at a time.

A row's id is its ``--id_field`` value, else its row number (0-based). Bad input (an unreadable file,
a line that is not JSON, a missing field) raises :class:`~ovembed.errors.InvalidInput` naming the
file and line; an empty text is not an error here (the job reports it in its errors file).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovembed.errors import InvalidInput, MissingDependency

RowId = str | int
FORMATS = ("txt", "jsonl", "json", "csv", "tsv", "parquet", "folder")


@dataclass(frozen=True)
class Group:
    """Consecutive rows of the input: ``first`` is the row number of ``ids[0]``."""

    first: int
    ids: list[RowId]
    texts: list[str]


def input_format(source: str) -> str:
    if source == "-":
        return "txt"
    path = Path(source)
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in FORMATS:
        return suffix
    return "txt"


def _field(record: Any, name: str, where: str) -> Any:
    if not isinstance(record, dict):
        raise InvalidInput(f"{where}: expected an object with a '{name}' field")
    if name not in record or record[name] is None:
        raise InvalidInput(f"{where}: no field '{name}' (fields: {', '.join(map(str, record)) or 'none'})")
    return record[name]


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: field '{name}' is {type(value).__name__}, not text")
    return value


def _row_id(value: Any, where: str) -> RowId:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(f"{where}: the id must be a string or an integer, got {type(value).__name__}")
    return value


def _records(source: str, fmt: str, text_field: str, id_field: str | None) -> Iterator[tuple[RowId, str]]:
    if fmt == "parquet":
        yield from _parquet(Path(source), text_field, id_field)
        return
    if fmt == "folder":
        root = Path(source)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            yield path.relative_to(root).as_posix(), path.read_text(encoding="utf-8")
        return
    stream = sys.stdin if source == "-" else open(source, encoding="utf-8", newline="")  # noqa: SIM115
    with stream:
        yield from _text_rows(stream, source, fmt, text_field, id_field)


def _text_rows(stream: io.TextIOBase | Any, source: str, fmt: str, text_field: str,
               id_field: str | None) -> Iterator[tuple[RowId, str]]:
    name = "stdin" if source == "-" else source
    if fmt == "txt":
        for i, line in enumerate(stream):
            yield i, line.rstrip("\r\n")
        return
    if fmt in ("csv", "tsv"):
        reader = csv.DictReader(stream, delimiter="\t" if fmt == "tsv" else ",")
        for i, record in enumerate(reader):
            where = f"{name} row {i + 2}"
            text = _text(_field(record, text_field, where), where, text_field)
            yield (_row_id(_field(record, id_field, where), where) if id_field else i), text
        return
    if fmt == "json":  # a JSON array, or JSON lines under a .json name
        head = stream.read(1)
        while head.isspace():
            head = stream.read(1)
        if head == "[":
            try:
                records = json.loads(head + stream.read())
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{name}: not valid JSON ({exc})") from None
            for i, record in enumerate(records):
                where = f"{name} item {i}"
                text = _text(_field(record, text_field, where), where, text_field)
                yield (_row_id(_field(record, id_field, where), where) if id_field else i), text
            return
        stream = _Prepend(head, stream)
    for i, line in enumerate(stream):
        where = f"{name} line {i + 1}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not valid JSON ({exc.msg})") from None
        text = _text(_field(record, text_field, where), where, text_field)
        yield (_row_id(_field(record, id_field, where), where) if id_field else i), text


class _Prepend:
    """Lines of ``stream`` with ``head`` put back in front of the first one."""

    def __init__(self, head: str, stream: Any) -> None:
        self._head, self._stream = head, stream

    def __iter__(self) -> Iterator[str]:
        first = True
        for line in self._stream:
            yield self._head + line if first else line
            first = False
        if first and self._head:
            yield self._head


def _parquet(path: Path, text_field: str, id_field: str | None) -> Iterator[tuple[RowId, str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependency("Parquet needs pyarrow: pip install 'ovembed[corpus]'") from None
    try:
        file = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's ArrowInvalid, OSError: say which file, not a traceback
        raise InvalidInput(f"{path}: not a readable Parquet file ({exc})") from None
    names = file.schema_arrow.names
    for name in (text_field, id_field):
        if name is not None and name not in names:
            raise InvalidInput(f"{path}: no column '{name}' (columns: {', '.join(names)})")
    columns = [text_field] + ([id_field] if id_field else [])
    row = 0
    for batch in file.iter_batches(batch_size=4096, columns=columns):
        texts = batch.column(text_field).to_pylist()
        ids = batch.column(id_field).to_pylist() if id_field else range(row, row + len(texts))
        for offset, (rid, text) in enumerate(zip(ids, texts, strict=True)):
            where = f"{path} row {row + offset}"
            yield _row_id(rid, where), _text(text, where, text_field) if text is not None else ""
        row += len(texts)


def read_groups(source: str, *, text_field: str = "text", id_field: str | None = None,
                rows: int = 4096) -> Iterator[Group]:
    """The input in groups of ``rows`` rows (the last may be shorter); ``InvalidInput`` on bad input."""
    fmt = input_format(source)
    if source != "-" and not Path(source).exists():
        raise InvalidInput(f"{source}: no such file or folder")
    ids: list[RowId] = []
    texts: list[str] = []
    first = 0
    try:
        for rid, text in _records(source, fmt, text_field, id_field):
            ids.append(rid)
            texts.append(text)
            if len(ids) == rows:
                yield Group(first, ids, texts)
                first += rows
                ids, texts = [], []
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InvalidInput(f"{source}: cannot read it ({exc.strerror or exc})") from None
    if ids:
        yield Group(first, ids, texts)
