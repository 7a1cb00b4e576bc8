#!/usr/bin/env python3
"""Docker HEALTHCHECK for the ovembed images: exit 0 when ``GET /v2/health/ready`` answers 200.

Standard library only (the slim image has no curl). The address is, first found wins:
``OVEMBED_HEALTHCHECK_URL``; else the ``--rest_port`` / ``--rest_bind_address`` flags of the
server's command line (``/proc/1/cmdline``: the entrypoint execs ``ovembed serve``, so the
server is PID 1, or a child of ``--init``'s PID 1); else ``OVEMBED_REST_PORT`` /
``OVEMBED_REST_BIND_ADDRESS``; else 127.0.0.1:8000. The readiness probes are open, so no API
key is needed.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

READY_PATH = "/v2/health/ready"
_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def _flag(argv: Sequence[str], name: str) -> str | None:
    """The last value of ``--name`` (also ``--name-with-dashes`` and ``--name=value``)."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    value = None
    for i, arg in enumerate(argv):
        key, sep, inline = arg.partition("=")
        if key in spellings:
            if sep:
                value = inline
            elif i + 1 < len(argv):
                value = argv[i + 1]
    return value


def ready_url(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The readiness URL of the server started with ``argv`` in environment ``env``."""
    if env.get("OVEMBED_HEALTHCHECK_URL"):
        return env["OVEMBED_HEALTHCHECK_URL"]
    port = _flag(argv, "rest_port") or env.get("OVEMBED_REST_PORT") or "8000"
    host = _flag(argv, "rest_bind_address") or env.get("OVEMBED_REST_BIND_ADDRESS") or "127.0.0.1"
    if host in _WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}{READY_PATH}"


def _server_argv(proc: Path = Path("/proc")) -> list[str]:
    """The command line of the ``ovembed serve`` process: PID 1, or the first one found."""
    candidates = [proc / "1", *sorted(p for p in proc.glob("[0-9]*") if p.name != "1")]
    for pid in candidates:
        try:
            argv = (pid / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if "serve" in args:
            return args
    return []


def main() -> int:
    url = ready_url(_server_argv(), os.environ)
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
