"""OpenVINO's errors as ovembed reports them: one useful line, and one ConfigError per failed load."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ovembed.errors import ConfigError

log = logging.getLogger("ovembed.serving")


_CHECK_FAILED = re.compile(r"Check '.*' failed at \S+:\d+:?")


@contextmanager
def loading_errors(name: str, xml: Path) -> Iterator[None]:
    """What reading, compiling and warming up ``xml`` raises, as one ConfigError naming the file:
    OpenVINO's full text goes to the log, its useful line into the reason (/v1/config)."""
    try:
        yield
    except ValueError as exc:
        raise ConfigError(f"{xml}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {xml.with_suffix('.bin')}: {exc.strerror or exc}") from None
    except RuntimeError as exc:
        log.error("model %s: OpenVINO failed to load %s:\n%s", name, xml.parent, str(exc).strip())
        raise ConfigError(f"OpenVINO could not load {xml.parent}: {openvino_reason(exc)}") from None


def openvino_reason(exc: BaseException) -> str:
    """The line of an OpenVINO error that says what happened.

    OpenVINO messages are a stack of ``Exception from <file>:<line>:`` and ``Check '...'
    failed at <file>:<line>:`` lines above the actual reason (``Incorrect weights in bin
    file!``); keeping only the first line leaves nothing useful.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines
              if not line.startswith("Exception from ") and not _CHECK_FAILED.fullmatch(line)]
    text = useful[-1] if useful else (lines[-1] if lines else "no details")
    return text if len(text) <= 300 else text[:297] + "..."
