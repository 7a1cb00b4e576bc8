"""``ovembed embed --input``: a corpus through one model in process, in row groups, resumable.

The input is streamed a group (``rows_per_group`` rows) at a time; two groups are in the engine at
once, so the next one is read and tokenized while the batcher runs the current one (batches formed
by token budget, length-sorted in its queue; rows come back in input order). Each finished group
becomes a part file and a manifest entry (:mod:`.manifest`); the parts are merged into the output
at the end. Memory is bounded by the group size, not by the corpus. Rows the server would refuse
(empty, too long without --truncate) go to ``<output>.errors.jsonl`` with their id and reason.
"""

from __future__ import annotations

import collections
import concurrent.futures
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ovembed.errors import InputTooLong, InvalidInput
from ovembed.offline.manifest import GroupRecord, Manifest, group_digest
from ovembed.offline.model import Model, as_precision
from ovembed.offline.readers import Group, read_groups
from ovembed.offline.writers import Rows, merge_parts, output_format, write_part

IN_FLIGHT = 2  # groups in the engine at once: one embedding, the next one tokenizing


@dataclass(frozen=True)
class JobOptions:
    input: str
    output: Path
    text_field: str = "text"
    id_field: str | None = None
    truncate: bool | None = None  # None: the model's default
    prompt_name: str | None = None
    dimensions: int | None = None
    precision: str = "float32"
    keep_text: bool = False
    batch_size: int = 256
    rows_per_group: int = 4096
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class JobResult:
    output: Path
    rows: int  # rows written, this run and the ones it resumed
    failed: int  # rows in the errors file
    tokens: int  # tokens embedded by this run
    seconds: float  # this run
    resumed_rows: int  # rows a previous run had finished
    errors_path: Path | None

    def summary(self) -> str:
        run_rows = self.rows + self.failed - self.resumed_rows
        rate = run_rows / self.seconds if self.seconds > 0 else 0.0
        tok_rate = self.tokens / self.seconds if self.seconds > 0 else 0.0
        resumed = f" (resumed after {self.resumed_rows})" if self.resumed_rows else ""
        failed = f", {self.failed} failed (see {self.errors_path})" if self.failed else ""
        return (f"embedded {self.rows} rows{resumed}{failed}, {self.tokens} tokens in {self.seconds:.1f} s: "
                f"{rate:.1f} rows/s, {tok_rate:.0f} tokens/s -> {self.output}")


@dataclass
class _Done:
    kept: list[int]  # indexes in the group of the rows embedded
    vectors: np.ndarray
    tokens: list[int]
    errors: list[tuple[int, str]]  # (index in the group, reason)


async def _embed_group(model: Model, texts: list[str], fields: dict[str, Any], batch_size: int) -> _Done:
    """The group's vectors; rows the use case refuses are retried one by one to name the bad ones."""
    errors = [(i, "empty text") for i, t in enumerate(texts) if not t]
    kept = [i for i, t in enumerate(texts) if t]
    try:
        result = await model.aembed([texts[i] for i in kept], batch_size=batch_size, **fields)
        return _Done(kept, result.vectors, result.token_counts, errors)
    except InvalidInput:
        pass
    import asyncio

    singles = await asyncio.gather(*(model.aembed([texts[i]], **fields) for i in kept), return_exceptions=True)
    refused = [o for o in singles if isinstance(o, InvalidInput)]
    if refused and len(refused) == len(kept) and not any(isinstance(o, InputTooLong) for o in refused):
        raise refused[0]  # the options, not the rows (an unknown prompt name, too many dimensions)
    good: list[int] = []
    rows: list[np.ndarray] = []
    tokens: list[int] = []
    for i, outcome in zip(kept, singles, strict=True):
        if isinstance(outcome, InvalidInput):
            errors.append((i, outcome.message.replace("input[0]", "the text").replace(
                "send truncate=true (or chunking)", "pass --truncate")))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            good.append(i)
            rows.append(outcome.vectors[0])
            tokens.append(outcome.token_counts[0])
    dims = fields.get("dimensions") or model.dimensions
    vectors = np.stack(rows) if rows else np.empty((0, dims), dtype=np.float32)
    return _Done(good, vectors, tokens, sorted(errors))


def _options(model: Model, opts: JobOptions) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    source = opts.input if opts.input == "-" else str(Path(opts.input).resolve())
    size = None if opts.input == "-" or Path(opts.input).is_dir() else Path(opts.input).stat().st_size
    info = model.info
    return {"input": source, "input_size": size, "model": info.name, "model_created": info.created,
            "model_precision": info.precision, "text_field": opts.text_field, "id_field": opts.id_field,
            "truncate": opts.truncate, "prompt_name": opts.prompt_name, "dimensions": opts.dimensions,
            "precision": opts.precision, "keep_text": opts.keep_text, "rows_per_group": opts.rows_per_group}


def _progress(opts: JobOptions, initial: int) -> Any:
    from tqdm import tqdm

    return tqdm(initial=initial, unit="doc", file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                disable=not (opts.progress and sys.stderr.isatty()))


def _start(opts: JobOptions, parts: Path, options: dict[str, Any]) -> Manifest:
    """A fresh manifest, or the unfinished run's (checked against ``options``)."""
    if opts.overwrite or opts.input == "-":  # stdin cannot be read again: never resumed
        shutil.rmtree(parts, ignore_errors=True)
        opts.output.unlink(missing_ok=True)
    elif opts.output.exists() and not parts.exists():
        raise InvalidInput(f"{opts.output} exists: pass --overwrite to replace it")
    manifest_path = parts / "manifest.json"
    if manifest_path.is_file():
        manifest = Manifest.load(manifest_path)
        manifest.check_options(options, opts.output)
        return manifest
    parts.mkdir(parents=True, exist_ok=True)
    return Manifest(options)


def run_job(model: Model, opts: JobOptions) -> JobResult:
    """Embed ``opts.input`` into ``opts.output``, resuming an unfinished run of the same job."""
    fmt = output_format(opts.output)
    parts = opts.output.with_name(opts.output.name + ".parts")
    manifest = _start(opts, parts, _options(model, opts))
    manifest_path = parts / "manifest.json"
    done = len(manifest.groups)
    resumed = manifest.rows_done
    fields = {"truncate": opts.truncate, "prompt_name": opts.prompt_name, "dimensions": opts.dimensions}
    started = time.perf_counter()
    tokens = 0
    bar = _progress(opts, resumed)
    pending: collections.deque[tuple[int, Group, concurrent.futures.Future[_Done]]] = collections.deque()

    def finish() -> None:
        nonlocal tokens
        k, group, future = pending.popleft()
        result = future.result()
        ids = [str(i) for i in group.ids] if opts.id_field else group.ids
        vectors = as_precision(result.vectors, opts.precision)
        if result.kept:
            write_part(parts / f"part-{k:06d}.{fmt}", fmt, Rows(
                [ids[i] for i in result.kept], vectors, result.tokens,
                [group.texts[i] for i in result.kept] if opts.keep_text else None))
        manifest.dims, manifest.dtype = int(vectors.shape[1]), vectors.dtype.name
        manifest.groups.append(GroupRecord(group.first, len(group.ids), len(result.kept), sum(result.tokens),
                                           group_digest(group.ids, group.texts),
                                           [{"row": group.first + i, "id": ids[i], "error": why}
                                            for i, why in result.errors]))
        manifest.save(manifest_path)
        tokens += sum(result.tokens)
        bar.update(len(group.ids))
        elapsed = time.perf_counter() - started
        bar.set_postfix_str(f"{tokens / max(elapsed, 1e-9):.0f} tok/s", refresh=False)

    seen = 0
    try:
        for k, group in enumerate(read_groups(opts.input, text_field=opts.text_field, id_field=opts.id_field,
                                              rows=opts.rows_per_group)):
            seen = k + 1
            if k < done:  # finished by an earlier run: it must be the same rows
                record = manifest.groups[k]
                if (record.first, record.rows, record.digest) != (group.first, len(group.ids),
                                                                  group_digest(group.ids, group.texts)):
                    raise InvalidInput(f"{opts.input} changed since the unfinished run of {opts.output} (rows "
                                       f"{record.first}..{record.first + record.rows - 1} differ): rerun with "
                                       "--overwrite to start again")
                continue
            pending.append((k, group, model.loop.submit(
                _embed_group(model, group.texts, fields, opts.batch_size))))
            if len(pending) >= IN_FLIGHT:
                finish()
        while pending:
            finish()
        if seen < done:
            raise InvalidInput(f"{opts.input} is shorter than when {opts.output} was started: rerun with --overwrite")
    finally:
        for _, _, future in pending:
            future.cancel()
        bar.close()
    return _finalize(opts, fmt, parts, manifest, tokens, time.perf_counter() - started, resumed, model)


def _finalize(opts: JobOptions, fmt: str, parts: Path, manifest: Manifest, tokens: int, seconds: float,
              resumed: int, model: Model) -> JobResult:
    files = [parts / f"part-{k:06d}.{fmt}" for k, g in enumerate(manifest.groups) if g.written]
    rows = sum(g.written for g in manifest.groups)
    dims = manifest.dims or opts.dimensions or model.dimensions
    merge_parts(files, fmt, opts.output, rows=rows, dims=dims, dtype=manifest.dtype)
    errors = [e for g in manifest.groups for e in g.errors]
    errors_path = opts.output.with_name(opts.output.name + ".errors.jsonl")
    if errors:
        import json

        errors_path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors), encoding="utf-8")
    else:
        errors_path.unlink(missing_ok=True)
    shutil.rmtree(parts, ignore_errors=True)
    return JobResult(opts.output, rows, len(errors), tokens, seconds, resumed, errors_path if errors else None)
