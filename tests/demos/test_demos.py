"""demos/: each demo runs as a subprocess against one live ``ovembed serve`` (the packaged MiniLM,
exported once per session, served with an API key on a free loopback port), and its output is
checked for content: shapes, norms, decoded values and which documents rank first."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.live_server import LiveServer, clean_env, live_server

ROOT = Path(__file__).resolve().parents[2]
DEMOS = ROOT / "demos"
KEY = "demo-secret"
MODEL = "minilm"

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def server(minilm_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("demos")
    key_file = tmp / "api_key"
    key_file.write_text(f"{KEY}\n")
    with live_server(minilm_repo, tmp / "server.log", "--api_key_file", str(key_file)) as running:
        yield running


def _run(server: LiveServer, command: list[str], *, api_key: str | None = KEY, check: bool = True,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = clean_env(OVEMBED_URL=server.base_url, OVEMBED_MODEL=MODEL)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if api_key is not None:
        env["API_KEY"] = api_key
    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, (f"{command} exited {proc.returncode}\n"
                                      f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def _python(server: LiveServer, demo: str, *args: str) -> str:
    return _run(server, [sys.executable, str(DEMOS / demo), *args]).stdout


def _unit(vector: list[float]) -> np.ndarray:
    return np.asarray(vector, dtype=np.float32)


def test_every_demo_is_tested() -> None:
    demos = {p.name for p in DEMOS.iterdir() if p.suffix in (".py", ".sh")}
    assert demos == {"curl.sh", "openai_client.py", "ollama_client.py", "langchain_client.py",
                     "rerank_clients.py", "semantic_search.py", "compare.sh"}
    for script in ("curl.sh", "compare.sh"):
        assert os.access(DEMOS / script, os.X_OK), f"demos/{script} is not executable"
    assert len(list((DEMOS / "data").glob("*.txt"))) == 8


# --- curl -------------------------------------------------------------------------------------


def _sections(stdout: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    title = None
    for line in stdout.splitlines():
        if line.startswith("### "):
            title = line[4:]
            sections[title] = ""
        elif title is not None:
            sections[title] += line + "\n"
    return sections


def _section(sections: dict[str, str], prefix: str) -> str:
    """The body of the section whose title is ``prefix``, else the one title starting with it."""
    if prefix in sections:
        return sections[prefix].strip()
    hits = [body for title, body in sections.items() if title.startswith(prefix)]
    assert len(hits) == 1, f"{prefix!r}: {list(sections)}"
    return hits[0].strip()


@pytest.mark.skipif(any(shutil.which(t) is None for t in ("bash", "curl", "od", "base64", "sed")),
                    reason="curl.sh needs bash, curl, sed, base64 and od")
def test_curl(server: LiveServer) -> None:
    sections = _sections(_run(server, [str(DEMOS / "curl.sh")]).stdout)
    assert len(sections) == 13, list(sections)
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready"):
        assert _section(sections, f"GET {path}") == "HTTP 200"
    models = json.loads(_section(sections, "GET /v3/models"))
    assert [m["id"] for m in models["data"]] == [MODEL]
    meta = json.loads(_section(sections, f"GET /v2/models/{MODEL}"))
    assert meta["outputs"][0]["shape"] == [-1, 384]

    floats = json.loads(_section(sections, 'POST /v3/embeddings {"model": "minilm", "input": ["The cat'))
    cat, kitten = (_unit(d["embedding"]) for d in floats["data"])
    assert cat.shape == kitten.shape == (384,)
    np.testing.assert_allclose([np.linalg.norm(cat), np.linalg.norm(kitten)], 1.0, atol=1e-4)
    assert float(cat @ kitten) > 0.5

    b64 = json.loads(_section(sections, 'POST /v3/embeddings {"model": "minilm", "input": "hello world", "encoding'))
    hello = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    assert hello.shape == (384,)
    decoded = [float(v) for v in _section(sections, "base64 decoded").split()]
    np.testing.assert_allclose(decoded, hello[:4], rtol=1e-6)

    dims = json.loads(_section(sections, 'POST /v3/embeddings {"model": "minilm", "input": "hello world", "dimen'))
    eight = _unit(dims["data"][0]["embedding"])
    assert eight.shape == (8,)
    assert float(np.linalg.norm(eight)) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(eight, hello[:8] / np.linalg.norm(hello[:8]), atol=1e-5)

    assert json.loads(_section(sections, "POST /v3/tokenize")) == {"tokens": [101, 7592, 2088, 102]}
    ids = json.loads(_section(sections, 'POST /v3/embeddings {"model": "minilm", "input": [7592, 2088]'))
    assert len(ids["data"][0]["embedding"]) == 4
    assert ids["usage"]["prompt_tokens"] == 2

    infer = json.loads(_section(sections, f"POST /v2/models/{MODEL}/infer"))
    assert infer["outputs"][0]["shape"] == [1, 384]
    np.testing.assert_allclose(infer["outputs"][0]["data"], hello, atol=1e-5)
    ollama = json.loads(_section(sections, "POST /api/embed"))
    np.testing.assert_allclose(ollama["embeddings"][0], hello, atol=1e-5)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl.sh needs curl")
def test_curl_reports_a_missing_key(server: LiveServer) -> None:
    proc = _run(server, [str(DEMOS / "curl.sh")], api_key=None, check=False)
    assert proc.returncode == 1
    assert proc.stdout.count("HTTP 200") == 3  # the open health routes answer
    assert "/v3/models -> HTTP 401" in proc.stderr


# --- Python clients ---------------------------------------------------------------------------


def test_openai_client(server: LiveServer) -> None:
    pytest.importorskip("openai")
    out = _python(server, "openai_client.py")
    assert re.search(r"^default: 4 embeddings x 384 dimensions from 'minilm', \d+ prompt tokens, "
                     r"encoding_format='base64' on the wire$", out, re.M), out
    diff = re.search(r"^float: encoding_format='float', max \|float - base64\| = (\S+)$", out, re.M)
    assert diff and float(diff.group(1)) < 1e-6, out
    assert "dimensions=64: 64 values, norm 1.0000" in out
    pairs = re.findall(r"^  (\d\.\d{3})  '(.+)' ~ '(.+)'$", out, re.M)
    assert len(pairs) == 6
    top_two = {frozenset(p[1:]) for p in pairs[:2]}
    assert top_two == {frozenset({"The cat sat on the mat.", "A kitten is resting on a rug."}),
                       frozenset({"Stock markets fell sharply on Monday.", "Shares dropped at the start of the week."})}
    assert float(pairs[1][0]) > float(pairs[2][0]) + 0.2


def test_ollama_client(server: LiveServer) -> None:
    pytest.importorskip("ollama")
    out = _python(server, "ollama_client.py")
    assert "models: minilm" in out
    assert re.search(r"^embed: 3 embeddings x 384 dimensions, \d+ prompt tokens", out, re.M), out
    ranked = re.findall(r"^  (\d\.\d{3})  (.+)$", out, re.M)
    assert ranked[0][1].startswith("Clean the chain"), out
    assert float(ranked[0][0]) > float(ranked[1][0]) + 0.2


def test_langchain_client(server: LiveServer, minilm_repo: Path) -> None:
    pytest.importorskip("langchain_openai", reason="pip install langchain-openai")
    args: list[str] = []
    length_safe = importlib.util.find_spec("transformers") is not None
    if length_safe:
        args += ["--tokenizer", str(minilm_repo.parent / MODEL)]  # the exported folder holds tokenizer.json
    out = _python(server, "langchain_client.py", *args)
    assert "embed_documents: 4 vectors x 384 dimensions" in out
    hits = re.findall(r"^  (\d\.\d{3})  (.+)$", out, re.M)
    assert len(hits) == 2
    assert hits[0][1].startswith("The moon's gravity pulls the oceans"), out
    if length_safe:
        match = re.search(r"^length-safe: a \d+-word text embedded in chunks of 240 tokens -> 384 dimensions, "
                          r"cosine (\S+) with its single sentence$", out, re.M)
        assert match and float(match.group(1)) > 0.7, out


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


@pytest.fixture(scope="module")
def rerank_server(rerank_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("demos-rerank")
    key_file = tmp / "api_key"
    key_file.write_text(f"{KEY}\n")
    with live_server(rerank_repo, tmp / "server.log", "--api_key_file", str(key_file)) as running:
        yield running


def test_rerank_clients(rerank_server: LiveServer) -> None:
    """Every client installed ranks exactly as the raw ``/v3/rerank`` call (the tiny model's scores
    mean nothing; that the clients parse them unchanged is the point)."""
    pytest.importorskip("cohere")
    import httpx

    sys.path.insert(0, str(DEMOS))
    try:
        import rerank_clients as demo
    finally:
        sys.path.remove(str(DEMOS))
    raw = httpx.post(f"{rerank_server.base_url}/v3/rerank", headers={"Authorization": f"Bearer {KEY}"},
                     json={"model": "rerank/bert", "query": demo.QUERY, "documents": demo.DOCUMENTS, "top_n": 3})
    expected = ", ".join(f"#{r['index']} {r['relevance_score']:.4f}" for r in raw.json()["results"])
    env = clean_env(OVEMBED_URL=rerank_server.base_url, OVEMBED_MODEL="rerank/bert", API_KEY=KEY)
    out = subprocess.run([sys.executable, str(DEMOS / "rerank_clients.py")], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert f"cohere: {expected}" in out.splitlines(), out
    for name, package in (("langchain", "langchain_cohere"), ("llamaindex", "llama_index.postprocessor.cohere_rerank")):
        if _installed(package):
            assert f"{name}: {expected}" in out.splitlines(), out
        else:
            assert f"{name}: skipped" in out, out


def test_semantic_search(server: LiveServer, tmp_path: Path) -> None:
    out = _python(server, "semantic_search.py")
    assert re.search(r"^indexed 16 passages from 8 files in .*data \(384 dimensions", out, re.M), out
    blocks = out.split("\nquery: ")[1:]
    assert len(blocks) == 3
    expected = {"How often should I oil my bike chain?": "bicycle.txt",
                "Why does the sea go in and out twice a day?": "tides.txt",
                "What do plants need light for?": "photosynthesis.txt"}
    for block in blocks:
        query, *results = block.strip().splitlines()
        assert len(results) == 3
        scores = [float(r.split()[0]) for r in results]
        assert scores == sorted(scores, reverse=True)
        assert results[0].split()[1] == expected[query], block

    (tmp_path / "a.txt").write_text("Espresso is brewed by forcing hot water through finely ground coffee.\n")
    (tmp_path / "b.txt").write_text("Glaciers carve U-shaped valleys.\n\nMoraines are piles of rock left by ice.\n")
    (tmp_path / "ignored.md").write_text("not a .txt file")
    custom = _python(server, "semantic_search.py", "--folder", str(tmp_path), "--query", "how is an espresso made",
                     "--top_k", "1")
    assert "indexed 3 passages from 2 files" in custom
    assert re.search(r"^  0\.\d{3}  a\.txt +Espresso is brewed", custom, re.M), custom


# --- ovembed compare ----------------------------------------------------------------------------


def test_compare(minilm_repo: Path) -> None:
    pytest.importorskip("torch", reason="ovembed compare needs the export extra")
    pytest.importorskip("sentence_transformers", reason="ovembed compare needs the export extra")
    env = clean_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run([str(DEMOS / "compare.sh"), str(minilm_repo.parent / MODEL)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = re.findall(r"^ *(\d\.\d{6})  (.+)$", proc.stdout, re.M)
    assert [text for _, text in rows][:3] == ["OpenVINO runs embedding models fast on CPUs.",
                                               "Sourdough bread rises thanks to wild yeast in the starter.",
                                               "¿Dónde está la estación de tren más cercana?"]
    assert len(rows) == 4
    assert all(float(cos) >= 0.9999 for cos, _ in rows)
    assert re.search(r"^min cosine \S+ \(threshold 0\.9999\) over 4 texts -> PASS$", proc.stdout, re.M), proc.stdout
