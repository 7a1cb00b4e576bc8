"""ovembed.offline.batchfile: OpenAI batch input -> batch output, the HTTP routes' bodies (a fake registry)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ovembed.errors import InvalidInput
from ovembed.offline.batchfile import run_batch_file
from ovembed.offline.model import Model
from tests.serving.fakes import FakeRegistry, FakeServable, make_app


def _request(custom_id: str, body: dict[str, object], url: str = "/v1/embeddings") -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body}) + "\n"


BODIES = [{"model": "fake", "input": ["alpha beta", "gamma"]},
          {"model": "fake", "input": "delta", "dimensions": 4, "encoding_format": "base64"},
          {"model": "fake", "input": "word " * 40},  # too long: a 400 line, not a crash
          {"model": "nope", "input": "x"},
          {"model": "fake", "input": ["epsilon"], "encoding_format": "int8"}]


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(FakeServable("fake", max_length=12))


def test_output_lines_match_the_http_route(registry: FakeRegistry, tmp_path: Path) -> None:
    batch = tmp_path / "requests.jsonl"
    batch.write_text("".join(_request(f"req-{i}", b) for i, b in enumerate(BODIES)))
    with Model.start(registry, "fake") as model:
        result = run_batch_file(model, batch, tmp_path / "results.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(len(BODIES))]
    assert (result.requests, result.failed) == (5, 2)
    with TestClient(make_app(FakeRegistry(FakeServable("fake", max_length=12)))) as client:
        for line, body in zip(lines, BODIES, strict=True):
            http = client.post("/v1/embeddings", json=body)
            assert line["response"]["status_code"] == http.status_code
            assert line["response"]["body"] == http.json()
            assert line["id"].startswith("ovembed-") and line["response"]["request_id"]
            assert (line["error"] is None) == (http.status_code == 200)
    assert lines[2]["error"]["code"] == "input_too_long" and lines[3]["error"]["code"] == "model_not_found"


def test_a_rerun_continues_after_the_last_whole_line(registry: FakeRegistry, tmp_path: Path) -> None:
    batch, out = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    batch.write_text("".join(_request(f"req-{i}", BODIES[0]) for i in range(6)))
    with Model.start(registry, "fake") as model:
        run_batch_file(model, batch, out)
        whole = out.read_text().splitlines(keepends=True)
        out.write_text("".join(whole[:2]) + whole[2][:10])  # killed while writing line 3
        result = run_batch_file(model, batch, out)
        assert (result.resumed, result.requests) == (2, 6)
        assert [json.loads(x)["custom_id"] for x in out.read_text().splitlines()] == [f"req-{i}" for i in range(6)]
        batch.write_text(_request("other", BODIES[0]))
        with pytest.raises(InvalidInput, match="another batch file"):
            run_batch_file(model, batch, out)


@pytest.mark.parametrize(("line", "message"), [
    ("not json\n", "line 1: not valid JSON"),
    (json.dumps({"custom_id": "a", "method": "GET", "url": "/v1/embeddings", "body": {}}) + "\n", "'method'"),
    (json.dumps({"method": "POST", "url": "/v1/embeddings", "body": {}}) + "\n", "'custom_id'"),
])
def test_a_malformed_line_is_one_error(registry: FakeRegistry, tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "b.jsonl").write_text(line)
    with Model.start(registry, "fake") as model, pytest.raises(InvalidInput, match=message):
        run_batch_file(model, tmp_path / "b.jsonl", tmp_path / "out.jsonl")


def test_unknown_url_is_a_400_line(registry: FakeRegistry, tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text(_request("a", {"model": "fake"}, url="/v1/chat/completions"))
    with Model.start(registry, "fake") as model:
        run_batch_file(model, tmp_path / "b.jsonl", tmp_path / "out.jsonl")
    line = json.loads((tmp_path / "out.jsonl").read_text())
    assert line["response"]["status_code"] == 400 and "/v1/chat/completions" in line["error"]["message"]
