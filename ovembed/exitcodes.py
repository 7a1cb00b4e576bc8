"""Process exit codes shared by every command (a leaf module: it imports nothing of ovembed)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1  # the command ran and failed (export error, server error, port in use)
    USAGE = 2  # bad flags or values (argparse's own code), invalid repository or API key file
    INTERRUPTED = 130
