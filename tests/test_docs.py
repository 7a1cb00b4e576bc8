"""The README and docs/ are checked like code: their commands run, their flags exist, their links resolve.

Every fenced ``bash``/``sh``/``python`` block carries a marker on the line before it:

- ``<!-- test: run -->``: run by :func:`test_runnable_blocks`, in document order, in a scratch folder
  (``, expect "TEXT"``: its output must contain TEXT). curl answers an HTTP error -> the block fails.
- ``<!-- test: serve -->``: started in the background (``ovembed serve``), waited for readiness, and
  stopped at the end of the document; the ``run`` blocks after it talk to it.
- ``<!-- test: skip (why) -->``: deliberately not run (needs the network, Docker, a GPU, minutes of
  measurement...); the reason is required.

The runnable blocks run offline: the Hub is the loopback stand-in (``tests/support/hub_stand_in.py``)
serving the packaged all-MiniLM-L6-v2 and tiny random rerank and sparse models under the ids the docs
name; ports 8000 (HTTP) and 9000 (gRPC) in a block become free ports (``OVEMBED_REST_PORT`` for
the server).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[1]
# architecture.md belongs to the contributors' side and holds no commands; the rest is checked.
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "architecture.md")]
COMMAND_LANGUAGES = ("bash", "sh", "shell", "console", "python", "py")
_MARKER = re.compile(r'<!--\s*test:\s*(run|serve|skip)\b\s*(?:,\s*expect\s+"([^"]*)")?\s*(\(([^)]*)\))?\s*-->')


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    mode: str | None  # run, serve, skip, or None when unmarked
    expect: str | None = None
    reason: str | None = None

    def __str__(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> Iterator[Block]:
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)", lines[i])
        if not fence:
            i += 1
            continue
        start, language = i, fence.group(1)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.search(previous)
        yield Block(doc, start + 1, language, "\n".join(lines[start + 1:end]) + "\n",
                    marker.group(1) if marker else None, marker.group(2) if marker else None,
                    marker.group(4) if marker else None)
        i = end + 1


def command_blocks() -> list[Block]:
    return [b for doc in DOCS for b in blocks(doc) if b.language in COMMAND_LANGUAGES]


# --- cheap checks --------------------------------------------------------------------------------

def test_every_command_block_is_marked_run_serve_or_skip_with_a_reason() -> None:
    unmarked = [str(b) for b in command_blocks() if b.mode is None]
    assert not unmarked, f"add <!-- test: run --> or <!-- test: skip (why) --> before: {unmarked}"
    no_reason = [str(b) for b in command_blocks() if b.mode == "skip" and not (b.reason or "").strip()]
    assert not no_reason, f"a skipped block says why: {no_reason}"
    assert any(b.mode == "run" for b in command_blocks())


def test_the_readme_is_for_users_short_with_a_table_of_contents() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 350
    assert "## Contents" in text
    for heading in re.findall(r"^## (.+)$", text, re.M):
        if heading != "Contents":
            assert f"(#{_slug(heading)})" in text, f"the table of contents misses '{heading}'"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_the_docs_resolve() -> None:
    broken = []
    for doc in [*DOCS, ROOT / "docs" / "architecture.md", ROOT / "benchmarks" / "README.md"]:
        text = doc.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.name}: {target}")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, broken


def _ovembed_flags() -> set[str]:
    from ovembed.cli import build_parser

    flags: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return flags


def _benchmark_flags() -> set[str]:
    """Flags the benchmark scripts declare (read from their source: the tests never import them)."""
    found: set[str] = set()
    for script in (ROOT / "benchmarks").glob("*.py"):
        found.update(re.findall(r'add_argument\(\s*"(--[\w-]+)"', script.read_text()))
    return found


# Flags of other tools that the docs quote: docker, pytest, TEI, OVMS, and optimum-cli's
# weight-compression options that --extra_quantization_params passes on.
OTHER_TOOLS = {
    "--rm", "--device", "--group-add", "--target", "--collect-only", "--model-id", "--pull",
    "--group-size", "--ratio", "--sym", "--all-layers", "--backup-precision", "--awq", "--scale-estimation",
    "--gptq", "--sensitivity-metric", "--dataset", "--num-samples", "--library",
    "--flag_name", "--flag-name",  # export.md: how flags are spelled
    # deploy.md: helm and kubectl
    "--namespace", "--create-namespace", "--set", "--wait", "--strict", "--all-containers", "--from-literal",
}


def test_every_flag_in_the_docs_exists_and_is_spelled_with_underscores() -> None:
    ovembed = _ovembed_flags()
    known = ovembed | _benchmark_flags() | OTHER_TOOLS
    unknown, hyphenated = set(), set()
    for doc in DOCS:
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*[a-z0-9])", doc.read_text()):
            if flag not in known:
                unknown.add(f"{doc.name}: {flag}")
            elif flag not in OTHER_TOOLS and "-" in flag[2:] and not flag.startswith("--no-") \
                    and flag.replace("-", "_").replace("__", "--", 1) in ovembed:
                hyphenated.add(f"{doc.name}: {flag}")
    assert not unknown, f"flags no parser knows: {sorted(unknown)}"
    assert not hyphenated, f"write flags with underscores, as --help does: {sorted(hyphenated)}"


# --- the runnable blocks ---------------------------------------------------------------------------

_CURL_FAILS = 'curl() { command curl --fail-with-body --silent --show-error "$@"; }\n'


@dataclass(frozen=True)
class Ports:
    rest: int
    grpc: int

    def localise(self, code: str) -> str:
        """The block's code with the documented ports replaced by this run's free ones."""
        return (code.replace(":8000", f":{self.rest}").replace(":9000", f":{self.grpc}")
                .replace("--port 9000", f"--port {self.grpc}"))


def _run(block: Block, cwd: Path, env: dict[str, str], ports: Ports) -> str:
    code = ports.localise(block.code)
    if block.language in ("python", "py"):
        command = [sys.executable, "-c", code]
    else:
        command = ["bash", "-euo", "pipefail", "-c", _CURL_FAILS + code]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{block} failed (exit {done.returncode}):\n{code}\n{output[-4000:]}"
    if block.expect is not None:
        assert block.expect in output, f"{block}: expected {block.expect!r} in the output:\n{output[-2000:]}"
    return output


def test_a_failing_block_fails_the_test(tmp_path: Path) -> None:
    """The runner itself: an HTTP error from curl, a non-zero exit or a missing expected text fail."""
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404, "no such route")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        ports = Ports(httpd.server_address[1], free_port())
        env = dict(os.environ)
        for code, language, expect in (("curl -s http://127.0.0.1:8000/v3/models\n", "bash", None),
                                       ("exit 3\n", "bash", None),
                                       ("print(383)\n", "python", "384")):
            block = Block(ROOT / "README.md", 1, language, code, "run", expect)
            with pytest.raises(AssertionError):
                _run(block, tmp_path, env, ports)
        assert "ok" in _run(Block(ROOT / "README.md", 1, "bash", "echo ok\n", "run"), tmp_path, env, ports)
    finally:
        httpd.shutdown()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _wait(what: str, ok: Callable[[], bool], server: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if server.poll() is not None:
            pytest.fail(f"ovembed serve exited with {server.returncode} waiting for {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def _every_model_available(port: int, repository: Path) -> bool:
    """Every model of ``repository``'s config.json is listed by the server and AVAILABLE (a model just
    exported is not listed until the server's next repository poll)."""
    status, body = _get(f"http://127.0.0.1:{port}/v1/config")
    if status != 200:
        return False
    models = json.loads(body)
    config = repository / "config.json"
    wanted = ({entry["config"]["name"] for entry in json.loads(config.read_text()).get("model_config_list", [])}
              if config.is_file() else set())
    if not wanted <= set(models):
        return False
    states = [v["state"] for m in models.values() if isinstance(m, dict)
              for v in m.get("model_version_status", [])]
    return bool(states) and all(s == "AVAILABLE" for s in states)


@pytest.fixture(scope="module")
def hub_repos(tmp_path_factory: pytest.TempPathFactory, minilm_source: Path) -> dict[str, Path]:
    """The Hub ids the docs export, each served by the stand-in from a local folder."""
    from tests.tiny_models import BUILDERS

    root = tmp_path_factory.mktemp("doc-hub")
    return {"sentence-transformers/all-MiniLM-L6-v2": minilm_source,
            "cross-encoder/ms-marco-MiniLM-L6-v2": BUILDERS["bert-rerank"](root / "rerank"),
            "naver/splade-v3": BUILDERS["bert-sparse"](root / "sparse")}


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in DOCS if any(b.mode in ("run", "serve") for b in blocks(d))],
                         ids=lambda d: d.name)
def test_runnable_blocks(doc: Path, hub_repos: dict[str, Path], tmp_path: Path) -> None:
    from tests.support.hub_stand_in import hub_env, hub_stand_in
    from tests.tiny_models import TINY_INT8_MAX_SCORE_DIFF, TINY_INT8_MIN_RANK_AGREEMENT

    ports = Ports(free_port(), free_port())
    port = ports.rest
    work = tmp_path / "work"
    work.mkdir()
    server: subprocess.Popen[bytes] | None = None
    log = tmp_path / "server.log"
    with hub_stand_in(hub_repos) as hub:
        env = hub_env(tmp_path, hub.base_url)
        env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                   OVEMBED_REST_PORT=str(port), TOKENIZERS_PARALLELISM="false",
                   # the stand-in's reranker is tiny and random: int8 moves its scores more than a real one's
                   OVEMBED_MAX_SCORE_DIFF=str(TINY_INT8_MAX_SCORE_DIFF),
                   OVEMBED_MIN_RANK_AGREEMENT=str(TINY_INT8_MIN_RANK_AGREEMENT))
        try:
            for block in blocks(doc):
                if block.mode == "serve":
                    assert server is None, f"{block}: a second server in one document"
                    command = ["bash", "-euo", "pipefail", "-c", "exec " + ports.localise(block.code).strip()]
                    with log.open("ab") as out:
                        server = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
                    _wait("/v2/health/ready", lambda: _get(f"http://127.0.0.1:{port}/v2/health/ready")[0] == 200,
                          server, log)
                elif block.mode == "run":
                    _run(block, work, env, ports)
                    if server is not None and "ovembed export" in block.code:
                        _wait("the new models to load", lambda: _every_model_available(port, work / "models"),
                              server, log)
        finally:
            if server is not None:
                server.terminate()
                try:
                    server.wait(60)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
    shutil.rmtree(work, ignore_errors=True)
