"""docker/entrypoint.sh: argument handling, run against a stub ``ovembed`` that echoes its argv.

No Docker engine is needed: the script is plain bash. The rule under test: with no arguments,
an empty first argument or a flag first, it runs ``ovembed serve`` with container defaults
placed before the user's flags, leaving out each default the user chose (as a flag in any
spelling, or as its OVEMBED_* variable); known subcommands and other programs run as given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")

CONFIG = ["--config_path", "/models/config.json"]
BIND = ["--rest_bind_address", "0.0.0.0"]
PORT = ["--rest_port", "8000"]
GRPC_BIND = ["--grpc_bind_address", "0.0.0.0"]
DEFAULTS = [*CONFIG, *BIND, *PORT, *GRPC_BIND]

_STUB = """#!{python}
import json, os, sys
print(json.dumps({{"prog": os.path.basename(sys.argv[0]), "argv": sys.argv[1:], "pid": os.getpid()}}))
sys.exit(int(os.environ.get("STUB_EXIT", "0")))
"""


@pytest.fixture(scope="module")
def stub_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with stub ``ovembed`` and ``mytool`` executables that print their argv as JSON."""
    folder = tmp_path_factory.mktemp("stub_bin")
    for name in ("ovembed", "mytool"):
        path = folder / name
        path.write_text(_STUB.format(python=sys.executable))
        path.chmod(0o755)
    return folder


def _env(stub_bin: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVEMBED_")}
    env["PATH"] = f"{stub_bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


def _run(stub_bin: Path, *args: str, **env: str) -> dict[str, object]:
    proc = subprocess.run([str(ENTRYPOINT), *args], env=_env(stub_bin, **env), capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])  # type: ignore[no-any-return]


def _argv(stub_bin: Path, *args: str, **env: str) -> list[str]:
    out = _run(stub_bin, *args, **env)
    assert out["prog"] == "ovembed"
    return out["argv"]  # type: ignore[return-value]


def test_script_is_executable_bash() -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text().startswith("#!/usr/bin/env bash\n")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param([], ["serve", *DEFAULTS], id="no-args"),
        pytest.param([""], ["serve", *DEFAULTS], id="empty-first-arg"),
        pytest.param(["serve"], ["serve", *DEFAULTS], id="serve"),
        pytest.param(["--log_format", "json"], ["serve", *DEFAULTS, "--log_format", "json"], id="flag-first"),
        pytest.param(["serve", "--log_format", "json", "--port", "9000"],
                     ["serve", *DEFAULTS, "--log_format", "json", "--port", "9000"], id="serve-with-flags"),
        pytest.param(["--no-metrics"], ["serve", *DEFAULTS, "--no-metrics"], id="boolean-flag"),
        pytest.param(["--help"], ["serve", *DEFAULTS, "--help"], id="help"),
    ],
)
def test_serve_gets_container_defaults(stub_bin: Path, args: list[str], expected: list[str]) -> None:
    assert _argv(stub_bin, *args) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--rest_port", "9000"], ["serve", *CONFIG, *BIND, *GRPC_BIND, "--rest_port", "9000"],
                     id="underscore"),
        pytest.param(["--rest-port", "9000"], ["serve", *CONFIG, *BIND, *GRPC_BIND, "--rest-port", "9000"],
                     id="dash"),
        pytest.param(["--rest_port=9000"], ["serve", *CONFIG, *BIND, *GRPC_BIND, "--rest_port=9000"],
                     id="underscore-equals"),
        pytest.param(["serve", "--rest-port=9000"], ["serve", *CONFIG, *BIND, *GRPC_BIND, "--rest-port=9000"],
                     id="serve-dash-equals"),
        pytest.param(["--rest_bind_address", "127.0.0.1"],
                     ["serve", *CONFIG, *PORT, *GRPC_BIND, "--rest_bind_address", "127.0.0.1"], id="bind"),
        pytest.param(["--grpc-bind-address=::"], ["serve", *CONFIG, *BIND, *PORT, "--grpc-bind-address=::"],
                     id="grpc-bind"),
        pytest.param(["--config_path", "/data/config.json"],
                     ["serve", *BIND, *PORT, *GRPC_BIND, "--config_path", "/data/config.json"], id="config-path"),
        pytest.param(["--config-path=/data/config.json"],
                     ["serve", *BIND, *PORT, *GRPC_BIND, "--config-path=/data/config.json"], id="config-path-dash"),
        pytest.param(["--model_path", "/models/minilm", "--model_name", "minilm"],
                     ["serve", *BIND, *PORT, *GRPC_BIND, "--model_path", "/models/minilm", "--model_name", "minilm"],
                     id="single-model-mode-drops-config-path"),
        pytest.param(["--model-path=/models/minilm"],
                     ["serve", *BIND, *PORT, *GRPC_BIND, "--model-path=/models/minilm"], id="model-path-dash-equals"),
        pytest.param(["--rest_port", "9000", "--rest_bind_address", "::", "--config_path", "/c.json",
                      "--grpc_bind_address", "127.0.0.1"],
                     ["serve", "--rest_port", "9000", "--rest_bind_address", "::", "--config_path", "/c.json",
                      "--grpc_bind_address", "127.0.0.1"], id="all-overridden"),
    ],
)
def test_user_flags_replace_defaults_never_duplicate(stub_bin: Path, args: list[str], expected: list[str]) -> None:
    argv = _argv(stub_bin, *args)
    assert argv == expected
    for option in ("rest_port", "rest_bind_address", "config_path", "grpc_bind_address"):
        spellings = (f"--{option}", f"--{option.replace('_', '-')}")
        assert sum(a.split("=", 1)[0] in spellings for a in argv) <= 1, argv


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({"OVEMBED_REST_PORT": "9000"}, ["serve", *CONFIG, *BIND, *GRPC_BIND], id="port"),
        pytest.param({"OVEMBED_REST_BIND_ADDRESS": "::"}, ["serve", *CONFIG, *PORT, *GRPC_BIND], id="bind"),
        pytest.param({"OVEMBED_CONFIG_PATH": "/data/config.json"}, ["serve", *BIND, *PORT, *GRPC_BIND],
                     id="config-path"),
        pytest.param({"OVEMBED_MODEL_PATH": "/models/minilm"}, ["serve", *BIND, *PORT, *GRPC_BIND], id="model-path"),
        pytest.param({"OVEMBED_GRPC_BIND_ADDRESS": "127.0.0.1"}, ["serve", *CONFIG, *BIND, *PORT], id="grpc-bind"),
        pytest.param({"OVEMBED_REST_PORT": ""}, ["serve", *DEFAULTS], id="empty-variable-is-unset"),
        pytest.param({"OVEMBED_LOG_FORMAT": "json", "API_KEY": "k"}, ["serve", *DEFAULTS], id="unrelated"),
    ],
)
def test_environment_variables_count_as_chosen(stub_bin: Path, env: dict[str, str], expected: list[str]) -> None:
    # A flag would override the variable (the CLI's rule), so the default must be left out.
    assert _argv(stub_bin, **env) == expected


def test_values_pass_through_verbatim(stub_bin: Path) -> None:
    args = ["--api_key_file", "/run/secrets/my key", "--allowed_origins=https://a.example,https://b.example",
            "--model_name", "--rest_port-looking value", "--log_level", "$HOME", "*"]
    assert _argv(stub_bin, *args) == ["serve", *DEFAULTS, *args]


@pytest.mark.parametrize(
    "args",
    [
        ["export", "--source_model", "sentence-transformers/all-MiniLM-L6-v2", "--model_repository_path", "/models"],
        ["compare", "--model_path", "/models/minilm", "--input", "two words"],
        ["benchmark", "--model", "minilm", "--api_url", "http://127.0.0.1:8000/v3/embeddings"],
        ["devices"],
        ["export", "--rest_port", "1"],  # no serve defaults, even if a serve flag appears
        ["--version"],
    ],
    ids=["export", "compare", "benchmark", "devices", "export-no-defaults", "version"],
)
def test_other_subcommands_run_as_given(stub_bin: Path, args: list[str]) -> None:
    assert _argv(stub_bin, *args) == args


def test_other_executables_run_as_given(stub_bin: Path) -> None:
    out = _run(stub_bin, "mytool", "a b", "--rest_port", "")
    assert out == {"prog": "mytool", "argv": ["a b", "--rest_port", ""], "pid": out["pid"]}
    shell = subprocess.run([str(ENTRYPOINT), "bash", "-c", 'echo "hi $0"', "there"], env=_env(stub_bin),
                           capture_output=True, text=True, timeout=30)
    assert (shell.returncode, shell.stdout) == (0, "hi there\n")


def test_exec_replaces_the_shell_and_keeps_the_exit_code(stub_bin: Path) -> None:
    """``exec``: ovembed gets the entrypoint's PID (PID 1 in a container, so SIGTERM reaches the
    server directly) and its exit code is the container's."""
    proc = subprocess.Popen([str(ENTRYPOINT), "--log_level", "DEBUG"], env=_env(stub_bin, STUB_EXIT="3"),
                            stdout=subprocess.PIPE, text=True)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert json.loads(stdout)["pid"] == proc.pid


def test_missing_program_fails(stub_bin: Path) -> None:
    proc = subprocess.run([str(ENTRYPOINT), "no-such-program-xyz"], env=_env(stub_bin), capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 127
    assert "no-such-program-xyz" in proc.stderr


def test_real_cli_behind_the_entrypoint() -> None:
    """The entrypoint in front of the installed ovembed: --version, and serve's flag parsing accepts
    the defaults (it stops at --help before loading anything)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVEMBED_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if shutil.which("ovembed", path=env["PATH"]) is None:
        pytest.skip("the ovembed console script is not installed next to this Python")
    version = subprocess.run([str(ENTRYPOINT), "--version"], env=env, capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("ovembed ")
    helped = subprocess.run([str(ENTRYPOINT), "--rest-port", "9000", "--help"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "usage: ovembed serve" in helped.stdout
