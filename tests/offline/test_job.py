"""ovembed.offline.job: formats, order, ids, errors file, resume (a fake registry; no model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ovembed.errors import InvalidInput
from ovembed.offline.job import JobOptions, run_job
from ovembed.offline.model import Model
from ovembed.offline.readers import read_groups
from tests.serving.fakes import FakeRegistry, FakeServable, expected_vector, text_ids

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

DOCS = [f"doc {i} " + "w " * (i % 5) for i in range(23)]


@pytest.fixture
def model() -> Model:
    with Model.start(FakeRegistry(FakeServable("fake", max_length=12)), "fake") as m:
        yield m


def _expected(texts: list[str]) -> np.ndarray:
    return np.stack([expected_vector(text_ids(t), 16, True) for t in texts])


def _corpus(tmp_path: Path, fmt: str, docs: list[str] = DOCS) -> Path:
    path = tmp_path / f"corpus.{fmt}"
    records = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    if fmt == "txt":
        path.write_text("".join(t + "\n" for t in docs))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif fmt == "json":
        path.write_text(json.dumps(records))
    elif fmt in ("csv", "tsv"):
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, ["id", "text"], delimiter="\t" if fmt == "tsv" else ",")
            writer.writeheader()
            writer.writerows(records)
    else:
        pq.write_table(pa.table({"id": [r["id"] for r in records], "text": docs}), path)
    return path


@pytest.mark.parametrize("fmt", ["txt", "jsonl", "json", "csv", "tsv", "parquet"])
def test_every_input_format_to_parquet_in_order(model: Model, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "vectors.parquet"
    id_field = None if fmt == "txt" else "id"
    result = run_job(model, JobOptions(str(_corpus(tmp_path, fmt)), out, id_field=id_field, rows_per_group=5,
                                       batch_size=3, progress=False))
    table = pq.read_table(out)
    assert table.num_rows == result.rows == len(DOCS) and result.failed == 0
    assert table.column("id").to_pylist() == (list(range(len(DOCS))) if fmt == "txt" else
                                              [f"d{i}" for i in range(len(DOCS))])
    vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors, _expected(DOCS), rtol=1e-6)
    assert table.column("tokens").to_pylist() == [len(text_ids(t)) for t in DOCS]
    assert pq.ParquetFile(out).metadata.num_row_groups == 5
    assert not (tmp_path / "vectors.parquet.parts").exists()
    assert "rows/s" in result.summary() and "tokens/s" in result.summary()


def test_npy_jsonl_outputs_and_compact_types(model: Model, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path, "jsonl")
    run_job(model, JobOptions(str(corpus), tmp_path / "v.npy", id_field="id", rows_per_group=4, progress=False))
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), _expected(DOCS), rtol=1e-6)
    ids = [json.loads(line) for line in (tmp_path / "v.ids.jsonl").read_text().splitlines()]
    assert ids == [f"d{i}" for i in range(len(DOCS))]
    run_job(model, JobOptions(str(corpus), tmp_path / "v.jsonl", precision="int8", keep_text=True, progress=False))
    lines = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    from ovembed.serving.wire.compact import compact

    assert [r["embedding"] for r in lines] == compact(_expected(DOCS), "int8").tolist()
    assert [r["text"] for r in lines] == DOCS and [r["id"] for r in lines] == list(range(len(DOCS)))


def test_refused_rows_go_to_the_errors_file(model: Model, tmp_path: Path) -> None:
    docs = ["fine", "", "word " * 40, "also fine"]
    out = tmp_path / "v.parquet"
    result = run_job(model, JobOptions(str(_corpus(tmp_path, "jsonl", docs)), out, id_field="id", progress=False))
    assert pq.read_table(out).column("id").to_pylist() == ["d0", "d3"]
    errors = [json.loads(line) for line in (tmp_path / "v.parquet.errors.jsonl").read_text().splitlines()]
    assert [(e["row"], e["id"]) for e in errors] == [(1, "d1"), (2, "d2")]
    assert errors[0]["error"] == "empty text" and "pass --truncate" in errors[1]["error"]
    assert result.failed == 2
    truncated = run_job(model, JobOptions(str(_corpus(tmp_path, "jsonl", docs)), out, id_field="id", truncate=True,
                                          overwrite=True, progress=False))
    assert (truncated.rows, truncated.failed) == (3, 1)  # the empty one stays refused


def test_a_bad_option_fails_the_job_not_every_row(model: Model, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="dimensions"):
        run_job(model, JobOptions(str(_corpus(tmp_path, "txt")), tmp_path / "v.parquet", dimensions=99,
                                  progress=False))


def test_empty_input(model: Model, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    result = run_job(model, JobOptions(str(tmp_path / "empty.txt"), tmp_path / "v.parquet", progress=False))
    assert result.rows == 0 and pq.read_table(tmp_path / "v.parquet").num_rows == 0


def test_resume_continues_after_the_last_finished_group(model: Model, tmp_path: Path) -> None:
    corpus, out = _corpus(tmp_path, "jsonl"), tmp_path / "v.parquet"
    opts = JobOptions(str(corpus), out, id_field="id", rows_per_group=5, progress=False)
    fake = model.registry.get("fake")
    calls = 0
    real = fake.embed

    async def dying(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("died")  # the job dies during its third group
        return await real(*args, **kwargs)

    fake.embed = dying  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="died"):
        run_job(model, opts)
    manifest = json.loads((tmp_path / "v.parquet.parts" / "manifest.json").read_text())
    assert 1 <= len(manifest["groups"]) < 5 and not out.exists()
    fake.embed = real  # type: ignore[method-assign]
    before = len(fake.calls)
    result = run_job(model, opts)
    assert result.resumed_rows == 5 * len(manifest["groups"]) and result.rows == len(DOCS)
    again = {t for inputs, _ in fake.calls[before:] for t in inputs}
    assert again and not again & set(DOCS[: 5 * len(manifest["groups"])])  # finished groups are not embedded again
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == [f"d{i}" for i in range(len(DOCS))]
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), _expected(DOCS), rtol=1e-6)


def test_resume_refuses_other_options_or_a_changed_input(model: Model, tmp_path: Path) -> None:
    corpus, out = _corpus(tmp_path, "txt"), tmp_path / "v.parquet"
    parts = tmp_path / "v.parquet.parts"
    run_job(model, JobOptions(str(corpus), out, rows_per_group=5, progress=False))
    with pytest.raises(InvalidInput, match="exists: pass --overwrite"):
        run_job(model, JobOptions(str(corpus), out, rows_per_group=5, progress=False))
    out.unlink()
    parts.mkdir()
    from ovembed.offline.job import _options
    from ovembed.offline.manifest import GroupRecord, Manifest, group_digest

    opts = JobOptions(str(corpus), out, rows_per_group=5, progress=False)
    manifest = Manifest(_options(model, opts), 16, "float32", [GroupRecord(0, 5, 5, 10, group_digest(
        [0, 1, 2, 3, 4], ["changed"] * 5))])
    manifest.save(parts / "manifest.json")
    with pytest.raises(InvalidInput, match="changed since the unfinished run"):
        run_job(model, opts)
    corpus.write_text("")
    manifest.options = _options(model, opts)  # same size check aside: an input now shorter than the run's
    manifest.save(parts / "manifest.json")
    with pytest.raises(InvalidInput, match="shorter than when"):
        run_job(model, opts)
    corpus.write_text("".join(t + "\n" for t in DOCS))
    with pytest.raises(InvalidInput, match=r"other options.*dimensions"):
        run_job(model, JobOptions(str(corpus), out, rows_per_group=5, dimensions=8, progress=False))


@pytest.mark.parametrize(("content", "field", "message"), [
    ('{"text": "a"}\n{"body": "b"}\n', "text", r"line 2: no field 'text' \(fields: body\)"),
    ('{"text": "a"}\nnot json\n', "text", "line 2: not valid JSON"),
    ('{"text": 3}\n', "text", "field 'text' is int, not text"),
])
def test_bad_input_names_the_line(tmp_path: Path, content: str, field: str, message: str) -> None:
    (tmp_path / "c.jsonl").write_text(content)
    with pytest.raises(InvalidInput, match=message):
        list(read_groups(str(tmp_path / "c.jsonl"), text_field=field))


def test_folder_input(tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "b.txt").write_text("bee")
    (tmp_path / "docs" / "sub" / "a.txt").write_text("ay")
    [group] = list(read_groups(str(tmp_path / "docs")))
    assert group.ids == ["b.txt", "sub/a.txt"] and group.texts == ["bee", "ay"]


def test_source_model_pulls_only_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from ovembed.offline.command import _pull
    from ovembed.offline.config import EmbedConfig

    ran: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    cfg = EmbedConfig(source_model="org/model", model_repository_path=tmp_path, input="c.txt",
                      output=tmp_path / "v.parquet")
    config_path, name = _pull(cfg)
    assert (config_path, name) == (tmp_path / "config.json", "org/model")
    assert ran and ran[0][3:6] == ["export", "--quiet", "--source_model=org/model"]
    (tmp_path / "org" / "model").mkdir(parents=True)
    (tmp_path / "org" / "model" / "graph.pbtxt").write_text("")
    config_path.write_text(json.dumps({"model_config_list": [{"config": {"name": "org/model",
                                                                         "base_path": "org/model"}}]}))
    ran.clear()
    assert _pull(cfg) == (config_path, "org/model") and not ran
