"""Browser safety for a server that often runs keyless on a laptop.

Any web page the user visits can make the browser send requests to ``http://127.0.0.1:8000``:

- *DNS rebinding* (the Ollama CVE-2024-28224 class): a page on ``evil.example`` re-points its
  name to 127.0.0.1 and then reads the responses as same-origin. The browser still sends
  ``Host: evil.example``, so the ``Host`` header is checked against ``--allowed_hosts``. Default:
  when bound to a loopback address, the localhost names and the bind address; when bound to any
  other address (containers, Kubernetes: probes and Services send pod IPs) no restriction, as
  Ollama does.
- *Cross-site requests*: a browser says where a request comes from in ``Origin``; one not in
  ``--allowed_origins`` gets 403. Defence in depth for browsers that omit it: the content types a
  page may send without a CORS preflight (``text/plain`` and the form encodings) get 415 naming
  ``Content-Type: application/json``. SDKs and ``curl -H 'Content-Type: application/json'`` are
  unaffected; a POST without a body or a Content-Type (``curl -X POST .../reload``) too. Ollama's
  routes (``/api/...``) take a JSON body whatever its Content-Type, as Ollama does: its documented
  ``curl .../api/embed -d '{...}'`` sends the form type; the Host and Origin checks still apply.

A compressed body (``Content-Encoding`` other than ``identity``) gets 415 naming the encoding,
instead of a confusing JSON or UTF-8 error further in. Pure ASGI: nothing is read before these
checks pass.
"""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ovembed.config import ServeConfig
from ovembed.errors import Forbidden, UnsupportedMediaType

_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
# What an HTML form or a fetch() without a preflight may send (the CORS "simple" content types).
_SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
_ANY_CONTENT_TYPE = "/api/"  # Ollama's routes (see the module docstring)


def is_loopback(address: str) -> bool:
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(cfg: ServeConfig) -> frozenset[str] | None:
    """The Host names the server answers to (lower case, no port); None: any."""
    given = [h.strip().lower() for h in cfg.allowed_hosts.split(",") if h.strip()]
    if "*" in given:
        return None
    if given:
        return frozenset(given)
    if not is_loopback(cfg.rest_bind_address):
        return None
    return frozenset({*_LOCAL_NAMES, cfg.rest_bind_address.strip("[]").lower()})


def host_name(header: str) -> str:
    """``Host`` without its port: ``[::1]:8000`` -> ``::1``, ``a.example:80`` -> ``a.example``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        return header.rsplit(":", 1)[0]
    return header


def _matches(host: str, allowed: frozenset[str]) -> bool:
    if host in allowed:
        return True
    # "*.example.com" allows subdomains; "localhost" allows "*.localhost" (RFC 6761: loopback)
    parts = host.split(".")
    return any(f"*.{'.'.join(parts[i:])}" in allowed for i in range(1, len(parts))) or (
        host.endswith(".localhost") and "localhost" in allowed)


class WebSafetyMiddleware:
    """403 for a ``Host`` not allowed or a browser ``Origin`` not allowed; 415 for simple
    (preflight-free) content types and compressed bodies."""

    def __init__(self, app: ASGIApp, cfg: ServeConfig) -> None:
        self.app = app
        self.hosts = allowed_hosts(cfg)
        origins = {o.strip().rstrip("/").lower() for o in cfg.allowed_origins.split(",") if o.strip()}
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.check(Headers(scope=scope), scope["path"])
        await self.app(scope, receive, send)

    def check(self, headers: Headers, path: str = "") -> None:
        host = headers.get("host")
        if self.hosts is not None and host is not None and not _matches(host_name(host), self.hosts):
            raise Forbidden(f"Host '{_printable(host)}' is not allowed: start the server with "
                            "--allowed_hosts to answer to it")
        origin = headers.get("origin")
        if origin is not None and not self.any_origin and origin.rstrip("/").lower() not in self.origins:
            raise Forbidden(f"Cross-origin request from '{_printable(origin)}' refused: start the server with "
                            "--allowed_origins to allow it")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise UnsupportedMediaType(f"Content-Encoding '{_printable(encoding)}' is not supported: "
                                       "send the body uncompressed")
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media in _SIMPLE_TYPES and not path.startswith(_ANY_CONTENT_TYPE):
            raise UnsupportedMediaType(f"Content-Type '{media}' is not accepted: send the body with "
                                       "Content-Type: application/json")


def _printable(text: str, limit: int = 100) -> str:
    shown = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
