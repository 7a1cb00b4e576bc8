"""Command line: flags -> typed config -> library call -> exit code.

Flags are derived from the config dataclasses in :mod:`ovembed.config`: each field ``foo_bar``
is ``--foo_bar`` and ``--foo-bar`` on the command line and ``OVEMBED_FOO_BAR`` in the
environment (command line wins). Heavy libraries are imported only inside the command run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import enum
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ovembed import __version__
from ovembed.config import BenchmarkConfig, CompareConfig, ExportConfig, ListConfig, RemoveConfig, ServeConfig
from ovembed.errors import ConfigError, OvembedError
from ovembed.exitcodes import ExitCode
from ovembed.offline.config import EmbedConfig
from ovembed.pull_fields import PULL_FIELDS, refusal


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(type, is_list) for annotations like ``int``, ``Path | None``, ``list[str]``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def _env_name(field: dataclasses.Field[Any]) -> str:
    return field.metadata.get("env") or f"OVEMBED_{field.name.upper()}"


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _converter(kind: Any) -> Callable[[str], Any]:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        by_value = {str(m.value).lower(): m for m in kind}

        def convert(text: str) -> Any:
            try:
                return by_value.get(text.lower()) or kind(text)  # kind(): aliases (_missing_)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"invalid choice: {text!r} (choose from {', '.join(str(m.value) for m in kind)})"
                ) from None

        convert.__name__ = kind.__name__
        return convert
    if kind is Path:
        return Path
    if kind in (int, float, str):
        return kind  # type: ignore[no-any-return]
    raise TypeError(f"unsupported option type {kind!r}")


def _flag_names(field: dataclasses.Field[Any]) -> list[str]:
    names = [f"--{field.name}"]
    if "_" in field.name:
        names.append(f"--{field.name.replace('_', '-')}")
    return names + [f for f in field.metadata.get("flags", ()) if f not in names]


class _Refused(argparse.Action):
    """A flag of another command: recognised, not in --help, and refused with a message naming it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        parser.error(refusal(self.dest))


def add_refused_arguments(parser: argparse.ArgumentParser, cls: type, taken: type) -> None:
    """The flags of ``cls`` that the command's config ``taken`` has no field for, refused (pull mode:
    the export options ``ovembed serve --source_model`` does not take)."""
    own = {f.name for f in dataclasses.fields(taken)}
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name not in own:
            parser.add_argument(*_flag_names(field), dest=field.name, action=_Refused, help=argparse.SUPPRESS,
                                nargs=0 if hints[field.name] is bool else "?", default=argparse.SUPPRESS)


# `serve --help` in groups (a new ServeConfig field fails tests/test_cli.py until it is placed here);
# pull mode's export options (ovembed.pull_fields) form their own group.
SERVE_HELP_GROUPS: dict[str, tuple[str, ...]] = {
    "model source": ("config_path", "model_path", "model_name", "allow_empty", "file_system_poll_wait_seconds",
                     "default_prompt_name", "allow_any_dimensions"),
    "network": ("rest_port", "rest_bind_address", "port", "grpc_bind_address", "max_connections", "header_timeout"),
    "device and engine": ("target_device", "inference_precision", "executors", "lone_shapes_max_mb", "cache_dir"),
    "batching": ("max_batch_tokens", "max_batch_size", "max_wait_ms", "max_queue", "max_queue_wait_seconds",
                 "cache_bytes"),
    "limits": ("max_inputs", "max_body_bytes", "max_request_tokens", "max_chunks_per_input", "request_timeout",
               "graceful_timeout"),
    "security": ("api_key_file", "allowed_origins", "allowed_hosts", "allowed_methods", "allowed_headers"),
    "observability": ("log_level", "log_format", "metrics_enable", "otlp_endpoint"),
    "pull mode (--source_model: export from the Hub, then serve)": ("source_model", *PULL_FIELDS),
}


def _grouped(cls: type) -> list[tuple[str, str]]:
    """(group title, field name) for the commands whose help is grouped."""
    if cls is not ServeConfig:
        return []
    return [(title, name) for title, names in SERVE_HELP_GROUPS.items() for name in names]


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per dataclass field, default from the environment when set."""
    hints = typing.get_type_hints(cls)
    placed = _grouped(cls)
    titles = {title: parser.add_argument_group(title) for title in dict.fromkeys(t for t, _ in placed)}
    groups = {name: titles[title] for title, name in placed}
    for field in dataclasses.fields(cls):
        kind, is_list = _base_type(hints[field.name])
        names = _flag_names(field)
        target: Any = groups.get(field.name, parser)
        env = _env_name(field)
        help_text = field.metadata.get("help", "")
        default = field.default if field.default is not dataclasses.MISSING else (
            field.default_factory() if field.default_factory is not dataclasses.MISSING else None
        )
        env_value = os.environ.get(env)
        kwargs: dict[str, Any] = {"dest": field.name, "help": f"{help_text} [env {env}]"}
        if kind is bool:
            value = _parse_bool(env_value) if env_value is not None else default
            if default:  # on by default: offer --no-<name> to turn it off
                negative = [n for n in names if n.startswith("--no-")]  # extra spellings, e.g. --no-metrics
                positive = [n for n in names if n not in negative]
                target.add_argument(*positive, action=argparse.BooleanOptionalAction, default=value, **kwargs)
                if negative:
                    target.add_argument(*negative, dest=field.name, action="store_false",
                                        default=argparse.SUPPRESS, help=f"Same as --no-{field.name}")
            else:
                target.add_argument(*names, action="store_true", default=value, **kwargs)
            continue
        conv = _converter(kind)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            kwargs["metavar"] = "{" + ",".join(str(m.value) for m in kind) + "}"
        if is_list:
            kwargs.update(action="append", type=conv)
            value = [conv(v) for v in env_value.split(",")] if env_value else None
            target.add_argument(*names, default=value, **kwargs)
            continue
        if env_value is not None:
            try:
                default = conv(env_value)
            except (ValueError, argparse.ArgumentTypeError) as exc:
                parser.error(f"{env}: {exc}")
        required = field.metadata.get("required", False) and env_value is None
        if default is not None and not required:
            kwargs["help"] += f" (default: {default})"
        target.add_argument(*names, type=conv, default=default, required=required, **kwargs)


def build_config(cls: type, args: argparse.Namespace) -> Any:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        if values[f.name] is None and f.default_factory is not dataclasses.MISSING:  # list options
            values[f.name] = f.default_factory()
    return cls(**values)


def _run_export(cfg: ExportConfig) -> int:
    from ovembed.export.pipeline import export_model

    result = export_model(cfg, log=print)
    print(result.summary())
    return ExitCode.OK


def _run_compare(cfg: CompareConfig) -> int:
    from ovembed.export.verify import compare_folder

    report = compare_folder(cfg, log=print)
    print(report.summary())
    return ExitCode.OK if report.passed else ExitCode.FAILURE


def _run_serve(cfg: ServeConfig) -> int:
    from ovembed.serving.http.server import run

    return run(cfg)


def _run_embed(cfg: EmbedConfig) -> int:
    from ovembed.offline.command import run

    return run(cfg)


def _run_benchmark(cfg: BenchmarkConfig) -> int:
    from ovembed.benchmark import run

    return run(cfg)


def _run_list(cfg: ListConfig) -> int:
    import json

    from ovembed.inventory import as_dicts, list_models, render_table

    models = list_models(cfg.config_path)
    print(json.dumps(as_dicts(models), indent=2) if cfg.json else render_table(models))
    return ExitCode.OK


def _run_remove(cfg: RemoveConfig) -> int:
    from ovembed.inventory import remove

    print(remove(cfg.config_path, cfg.model_repository_path, cfg.model_name, delete_files=cfg.delete_files))
    return ExitCode.OK


def _run_devices(_: None) -> int:
    import openvino as ov

    from ovembed.serving.openvino.devices import describe_devices, devices_report

    print(devices_report(describe_devices(ov.Core())))
    return ExitCode.OK


_COMMANDS: dict[str, tuple[type | None, Callable[[Any], int], str]] = {
    "export": (ExportConfig, _run_export, "Export a Hugging Face embedding model into an OpenVINO model repository"),
    "compare": (CompareConfig, _run_compare, "Compare an exported model with its PyTorch reference"),
    "serve": (ServeConfig, _run_serve, "Serve a model repository (OpenAI, KServe, Ollama APIs)"),
    "embed": (EmbedConfig, _run_embed, "Embed a corpus (or an OpenAI batch file) in process, resumably"),
    "benchmark": (BenchmarkConfig, _run_benchmark, "Load-test an OpenAI- or Ollama-compatible embeddings server"),
    "devices": (None, _run_devices, "List OpenVINO devices and what suits them"),
    "list": (ListConfig, _run_list, "List a repository's models and their state on disk (OVMS --list_models)"),
    "remove": (RemoveConfig, _run_remove, "Remove a model from config.json (OVMS --remove_from_config)"),
}


_SUBPARSERS: dict[str, argparse.ArgumentParser] = {}


class _HelpFormatter(argparse.HelpFormatter):
    """Help shows each flag in its documented (underscore) spelling; the dashed aliases still parse."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        strings = action.option_strings
        keep = [s for s in strings if "_" in s or "-" not in s[2:]] or strings[:1]
        if keep != strings:
            action = copy.copy(action)
            action.option_strings = keep
        return super()._format_action_invocation(action)


class _Parser(argparse.ArgumentParser):
    """Usage errors in two lines (the error with a close spelling, then where help is), not the whole
    usage; flags are never abbreviated (``--config`` is not taken for ``--config_path``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        unknown = re.match(r"unrecognized arguments: (\S+)", message)
        if unknown:
            canonical = {f: a.option_strings[0] for a in self._actions for f in a.option_strings if f[:2] == "--"}
            close = difflib.get_close_matches(unknown.group(1).split("=", 1)[0], list(canonical), n=1, cutoff=0.6)
            if close:  # named by its first (underscore) spelling, the one the docs use
                message += f" (did you mean {canonical[close[0]]}?)"
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for the options.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ovembed", description="Serve text embeddings with OpenVINO.")
    parser.add_argument("--version", action="version", version=f"ovembed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, (cls, _, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _SUBPARSERS[name] = p
        if cls is not None:
            add_config_arguments(p, cls)
        if cls is ServeConfig:
            add_refused_arguments(p, ExportConfig, ServeConfig)
    return parser


# Options whose value is itself a list of flags (OVMS: --extra_quantization_params "--sym --ratio 0.8").
_FLAG_VALUED = ("--extra_quantization_params", "--extra-quantization-params")


def _join_flag_values(argv: list[str]) -> list[str]:
    """argparse refuses a value that starts with '--'; glue it to its option instead."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in _FLAG_VALUED and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _task_word_as_flag(argv: list[str]) -> list[str]:
    """OVMS's spelling ``export_model.py rerank_ov ...``: ``ovembed export rerank_ov ...``."""
    if len(argv) > 1 and argv[0] == "export" and not argv[1].startswith("-"):
        return [argv[0], "--task", argv[1], *argv[2:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(
        _task_word_as_flag(_join_flag_values(list(sys.argv[1:] if argv is None else argv))))
    if unknown:  # reported by the command's own parser, which knows its flags' spellings
        _SUBPARSERS[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    cls, runner, _ = _COMMANDS[args.command]
    try:
        cfg = build_config(cls, args) if cls is not None else None
    except ConfigError as exc:  # a flag or env value the config refuses
        print(f"ovembed {args.command}: error: {exc.message}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        return runner(cfg)
    except OvembedError as exc:
        print(f"ovembed {args.command}: error: {exc.message}", file=sys.stderr)
        return ExitCode.FAILURE
    except KeyboardInterrupt:
        print(f"ovembed {args.command}: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
