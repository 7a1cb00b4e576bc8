"""What every command's config shares: the enums flags choose from, :func:`option` fields and the checks
run on construction."""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing
from dataclasses import field
from typing import Any

from ovembed.errors import ConfigError


class WeightFormat(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    INT4 = "int4"

    def __str__(self) -> str:
        return self.value


class Quantization(str, enum.Enum):
    WEIGHT_ONLY = "weight_only"  # NNCF compress_weights: int8/int4 weights, float activations
    STATIC = "static"  # NNCF quantize: int8 weights and activations, calibrated on texts

    def __str__(self) -> str:
        return self.value


class Executors(str, enum.Enum):
    """`ovembed serve --executors`: how many compiled copies of a model serve its batches (CPU)."""

    AUTO = "auto"  # two for int8/int4 weights, one for fp32/fp16 (memory: see the README)
    ONE = "one"  # one executor: the least memory
    TWO = "two"  # a second, multi-stream executor for large batches, whatever the weights

    def __str__(self) -> str:
        return self.value


class Task(str, enum.Enum):
    """What a model does; OVMS's export subcommand names (``embeddings_ov``, ``rerank_ov``) work too."""

    EMBEDDINGS = "embeddings"
    RERANK = "rerank"
    SPARSE = "sparse"  # SPLADE-style masked LM (ovembed only: OVMS has no sparse task)
    TOKEN_EMBED = "token_embed"  # late interaction (ColBERT-style): one vector per token (ovembed only)
    CLASSIFY = "classify"  # sequence classification with more than one label (sentiment, NLI, guard; ovembed only)
    BGE_M3 = "bge_m3"  # BGE-M3's three heads (dense, sparse, multi-vector) from one pass (ovembed only)

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> Task | None:
        if isinstance(value, str):
            name = value.lower().removesuffix("_ov")
            return next((m for m in cls if m.value == name), None)
        return None


class Pooling(str, enum.Enum):
    CLS = "CLS"
    MEAN = "MEAN"
    LAST = "LAST"

    def __str__(self) -> str:
        return self.value


class LogLevel(str, enum.Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"

    def __str__(self) -> str:
        return self.value


class LogFormat(str, enum.Enum):
    TEXT = "text"
    JSON = "json"

    def __str__(self) -> str:
        return self.value


class EncodingFormat(str, enum.Enum):
    FLOAT = "float"
    BASE64 = "base64"

    def __str__(self) -> str:
        return self.value


class Scenario(str, enum.Enum):
    """`ovembed benchmark --scenario`: one kind of client, or bulk and interactive clients at once."""

    UNIFORM = "uniform"
    MIXED = "mixed"

    def __str__(self) -> str:
        return self.value


def option(default: Any, help: str, *, required: bool = False, metavar: str | None = None,
           positional: bool = False, flags: tuple[str, ...] = (), env: str | None = None) -> Any:
    """A dataclass field that is also a command-line flag and an environment variable.

    ``flags`` adds extra spellings (e.g. OVMS's ``--port``); ``env`` overrides the variable name.
    """
    meta = {"help": help, "required": required, "metavar": metavar, "positional": positional,
            "flags": flags, "env": env}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@functools.cache
def _choice_fields(cls: type) -> tuple[tuple[str, type[enum.Enum]], ...]:
    """The fields of a config class whose type is an enum (``X`` or ``X | None``)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kinds = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        if len(kinds) == 1 and isinstance(kinds[0], type) and issubclass(kinds[0], enum.Enum):
            out.append((f.name, kinds[0]))
    return tuple(out)


class _Checked:
    """Validation shared by the config classes, run on construction (CLI, env and library alike).

    Enum fields also accept their values as strings, case-insensitively (``"int8"``, ``"debug"``);
    anything else raises :class:`ConfigError` naming the flag. Subclasses add ``_check``.
    """

    def __post_init__(self) -> None:
        for name, kind in _choice_fields(type(self)):
            value = getattr(self, name)
            if value is None or isinstance(value, kind):
                continue
            by_value = {str(m.value).lower(): m for m in kind}
            found = by_value.get(str(value).lower()) if isinstance(value, str) else None
            if found is None and isinstance(value, str):
                try:  # aliases an enum accepts (Task: OVMS's "rerank_ov")
                    found = kind(value)
                except ValueError:
                    found = None
            if found is None:
                raise ConfigError(f"--{name} must be one of {', '.join(str(m.value) for m in kind)}, "
                                  f"got {value!r}")
            object.__setattr__(self, name, found)
        self._check()

    def _check(self) -> None:
        pass


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)

