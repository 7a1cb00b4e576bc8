"""A small, tolerant reader for the protobuf text format used by MediaPipe graphs.

It turns text such as ``node { name: "x" node_options: { [type.googleapis.com / a.B]: { k: 1 } } }``
into nested dicts. Repeated keys become lists. Comments (``#``), commas and semicolons between
fields, single or double quoted strings, and ``key { }`` / ``key: { }`` are all accepted.
"""

from __future__ import annotations

import re
from typing import Any, Union

from ovembed.errors import ConfigError

Value = Union[str, int, float, bool, "Message", "Enum"]
Message = dict[str, Any]


class Enum(str):
    """An unquoted identifier value (protobuf enum), kept apart from quoted strings."""


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<ext>\[[^\]]*\])
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<num>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?[fF]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}:<>,;])
    """,
    re.VERBOSE,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            line = text.count("\n", 0, pos) + 1
            raise ConfigError(f"graph.pbtxt line {line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group(), text.count("\n", 0, pos) + 1))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _error(self, what: str) -> ConfigError:
        tok = self._peek()
        where = f"line {tok[2]} near {tok[1]!r}" if tok else "end of file"
        return ConfigError(f"graph.pbtxt {where}: {what}")

    def message(self, closing: str | None) -> Message:
        msg: Message = {}
        while True:
            tok = self._peek()
            if tok is None:
                if closing is not None:
                    raise self._error(f"missing '{closing}'")
                return msg
            kind, text, _ = tok
            if kind == "punct" and text in ",;":
                self.i += 1
                continue
            if closing is not None and kind == "punct" and text == closing:
                self.i += 1
                return msg
            if kind == "ext":
                key = re.sub(r"\s+", "", text)
            elif kind == "ident":
                key = text
            else:
                raise self._error("expected a field name")
            self.i += 1
            value = self._value()
            if key in msg:
                existing = msg[key]
                if isinstance(existing, list):
                    existing.append(value)
                else:
                    msg[key] = [existing, value]
            else:
                msg[key] = value

    def _value(self) -> Any:
        tok = self._peek()
        if tok is not None and tok[0] == "punct" and tok[1] == ":":
            self.i += 1
            tok = self._peek()
        if tok is None:
            raise self._error("expected a value")
        kind, text, _ = tok
        self.i += 1
        if kind == "punct" and text in "{<":
            return self.message("}" if text == "{" else ">")
        if kind == "str":
            parts = [_unquote(text)]
            while (nxt := self._peek()) is not None and nxt[0] == "str":  # adjacent literals concatenate
                parts.append(_unquote(nxt[1]))
                self.i += 1
            return "".join(parts)
        if kind == "num":
            num = text.rstrip("fF")
            return float(num) if any(c in num for c in ".eE") else int(num)
        if kind == "ident":
            low = text.lower()
            if low in ("true", "t"):
                return True
            if low in ("false", "f"):
                return False
            return Enum(text)
        self.i -= 1
        raise self._error("expected a value")


def parse_pbtxt(text: str) -> Message:
    """Parse protobuf text format into nested dicts (repeated fields become lists)."""
    return _Parser(text).message(None)


def as_list(value: Any) -> list[Any]:
    """A field that may be repeated, always as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
