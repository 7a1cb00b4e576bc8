"""A loopback stand-in for the Hugging Face Hub, serving model folders to ``huggingface_hub``.

It answers the routes ``snapshot_download`` uses (huggingface_hub 1.x, plain HTTP, no Xet):

- ``GET /api/models/{repo_id}/revision/{revision}``: the model info (``sha``, ``siblings``);
- ``HEAD|GET /{repo_id}/resolve/{revision}/{filename}``: file metadata (``X-Repo-Commit``, ``ETag``,
  ``Content-Length``) and content.

Unknown repositories answer 404 with ``X-Error-Code: RepoNotFound``, gated ones 401 with ``GatedRepo``
unless the request carries ``Authorization: Bearer <token>`` (``HubStandIn.token``), unknown revisions
404 with ``RevisionNotFound``, as the Hub does. Point ``HF_ENDPOINT`` at ``base_url``.

    with hub_stand_in({"org/tiny": tiny_folder}) as hub:
        env = {"HF_ENDPOINT": hub.base_url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.server import free_port

_ROOT = Path(__file__).resolve().parents[2]


def hub_env(tmp_path: Path, endpoint: str, offline: bool = False) -> dict[str, str]:
    """A child process's environment pointed at the stand-in: ``HF_ENDPOINT``, a fresh ``HF_HOME``
    under ``tmp_path``, and none of the caller's HF_*, OVEMBED_*, TRANSFORMERS_* or API_KEY settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "OVEMBED_", "TRANSFORMERS_", "API_KEY"))}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_OFFLINE="1" if offline else "0", HF_HOME=str(tmp_path / "hf"),
               PYTHONPATH=str(_ROOT))
    return env


def _commit(folder: Path) -> str:
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()


@dataclass
class HubStandIn:
    repos: dict[str, Path]
    gated: set[str] = field(default_factory=set)
    port: int = 0
    requests: list[str] = field(default_factory=list)  # "METHOD path" of every request served
    token: str = "hf_stand_in_token"  # what opens the gated repositories

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def commit(self, repo_id: str) -> str:
        return _commit(self.repos[repo_id])

    def downloaded(self, repo_id: str) -> set[str]:
        """Files of ``repo_id`` whose content was sent (GET on resolve)."""
        prefix = f"GET /{repo_id}/resolve/"
        return {r[len(prefix):].split("/", 1)[1] for r in self.requests if r.startswith(prefix)}

    def _refuse(self, repo_id: str, revision: str, request: Request) -> Response | None:
        if repo_id not in self.repos:
            return Response(status_code=404, headers={"X-Error-Code": "RepoNotFound",
                                                      "X-Error-Message": "Repository not found"})
        if repo_id in self.gated and request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(status_code=401, headers={"X-Error-Code": "GatedRepo",
                                                      "X-Error-Message": "Access to this model is restricted"})
        if revision not in ("main", self.commit(repo_id)):
            return Response(status_code=404, headers={"X-Error-Code": "RevisionNotFound",
                                                      "X-Error-Message": "Invalid rev id"})
        return None

    async def _model_info(self, request: Request) -> Response:
        self.requests.append(f"{request.method} {request.url.path}")
        repo_id, _, revision = request.path_params["rest"].partition("/revision/")
        refused = self._refuse(repo_id, revision or "main", request)
        if refused is not None:
            return refused
        folder = self.repos[repo_id]
        siblings = [{"rfilename": str(p.relative_to(folder))} for p in sorted(folder.rglob("*")) if p.is_file()]
        return JSONResponse({"id": repo_id, "modelId": repo_id, "sha": self.commit(repo_id), "private": False,
                             "gated": repo_id in self.gated, "disabled": False, "siblings": siblings, "tags": []})

    async def _resolve(self, request: Request) -> Response:
        self.requests.append(f"{request.method} {request.url.path}")
        rest = request.path_params["rest"]
        repo_id, _, tail = rest.partition("/resolve/")
        revision, _, filename = tail.partition("/")
        refused = self._refuse(repo_id, revision, request)
        if refused is not None:
            return refused
        path = self.repos[repo_id] / filename
        if not path.is_file():
            return Response(status_code=404, headers={"X-Error-Code": "EntryNotFound"})
        body = path.read_bytes()
        headers = {"X-Repo-Commit": self.commit(repo_id), "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
                   "Content-Length": str(len(body))}
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers)
        return Response(body, headers=headers, media_type="application/octet-stream")

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/api/models/{rest:path}", self._model_info, methods=["GET"]),
            Route("/{rest:path}", self._resolve, methods=["GET", "HEAD"]),
        ])


@contextmanager
def hub_stand_in(repos: dict[str, Path], gated: set[str] | None = None) -> Iterator[HubStandIn]:
    hub = HubStandIn(dict(repos), set(gated or ()), free_port())
    server = uvicorn.Server(uvicorn.Config(hub.app(), host="127.0.0.1", port=hub.port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Hub stand-in did not start")
        time.sleep(0.02)
    try:
        yield hub
    finally:
        server.should_exit = True
        thread.join(timeout=10)
