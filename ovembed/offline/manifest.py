"""The manifest of an ``ovembed embed`` run: what it was asked to do and which row groups are done.

It lives in ``<output>.parts/manifest.json`` beside the finished parts and is rewritten atomically
after each part, so a job killed at any point (SIGKILL included) resumes after its last finished
group. On resume the options must be the same, and each finished group's rows must hash as they
did (the input is re-read, not re-embedded), else the job refuses to mix two inputs in one output.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ovembed.errors import InvalidInput
from ovembed.repository import atomic_write_text

VERSION = 1


def group_digest(ids: list[Any], texts: list[str]) -> str:
    """A hash of one group's ids and texts (what a resumed run must find again)."""
    h = hashlib.sha256()
    for rid, text in zip(ids, texts, strict=True):
        h.update(json.dumps([rid, text], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class GroupRecord:
    first: int  # row number of the group's first row
    rows: int  # rows read (written + failed)
    written: int  # rows in the part
    tokens: int
    digest: str
    errors: list[dict[str, Any]] = field(default_factory=list)  # {"row", "id", "error"}


@dataclass
class Manifest:
    options: dict[str, Any]
    dims: int = 0
    dtype: str = "float32"
    groups: list[GroupRecord] = field(default_factory=list)
    version: int = VERSION

    @classmethod
    def load(cls, path: Path) -> Manifest:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            raise InvalidInput(f"{path}: written by another version of ovembed embed; rerun with --overwrite")
        data["groups"] = [GroupRecord(**g) for g in data["groups"]]
        return cls(**data)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), ensure_ascii=False) + "\n")

    @property
    def rows_done(self) -> int:
        return sum(g.rows for g in self.groups)

    def check_options(self, options: dict[str, Any], where: Path) -> None:
        changed = sorted(k for k in set(options) | set(self.options) if options.get(k) != self.options.get(k))
        if changed:
            detail = ", ".join(f"{k}: {self.options.get(k)!r} then, {options.get(k)!r} now" for k in changed)
            raise InvalidInput(f"{where} is an unfinished run with other options ({detail}): rerun it with the "
                               "same options, or pass --overwrite to start again")
