"""Fail when requirements.lock and pyproject.toml disagree.

Every dependency that pyproject.toml declares (serving and the export, test, corpus, ray and otel extras) must be pinned in
the lock, and every pin must satisfy the declared range. Run by scripts/setup.sh and the tests.
Usage: python scripts/check_lock.py [ROOT]
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

LOCKED_EXTRAS = ("export", "test", "corpus", "ray", "otel")
# Left out of the lock on purpose (scripts/lock.sh says why).
UNLOCKED = {"torchvision", "torchaudio", "triton"}


def read_lock(path: Path) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def declared(pyproject: Path) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def problems(root: Path) -> list[str]:
    pins = read_lock(root / "requirements.lock")
    found = []
    for req in declared(root / "pyproject.toml"):
        name = canonicalize_name(req.name)
        if name in UNLOCKED:
            continue
        if name not in pins:
            found.append(f"{req.name} is declared in pyproject.toml but not pinned in requirements.lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            found.append(f"{req.name}=={pins[name]} in requirements.lock does not satisfy '{req}'")
    return found


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    found = problems(root)
    for line in found:
        print(f"lock: {line}; run scripts/lock.sh", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
