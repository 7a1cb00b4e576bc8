"""Ollama's keep_alive, parsed as Ollama's api.Duration parses it: seconds or a Go duration string."""

from __future__ import annotations

import pytest

from ovembed.errors import InvalidInput
from ovembed.serving.wire.ollama import parse_embed_request, parse_keep_alive, parse_legacy_request


@pytest.mark.parametrize(("value", "seconds"), [
    (None, None), (0, 0.0), (30, 30.0), (1.5, 1.5), (-1, -1.0), (-300, -1.0),
    ("0", 0.0), ("5m", 300.0), ("1h30m", 5400.0), ("300ms", 0.3), ("1.5h", 5400.0), ("2h45m10s", 9910.0),
    ("-1m", -1.0), ("+10s", 10.0), ("250us", 0.00025), ("7\u00b5s", 7e-6),
])
def test_numbers_are_seconds_and_strings_go_durations(value: object, seconds: float | None) -> None:
    assert parse_keep_alive({"keep_alive": value} if value is not None else {}) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5", "-1", "5 m", "m", "5d", "1h-1m", "nan"])
def test_strings_without_a_unit_or_with_an_unknown_one_are_400(value: str) -> None:
    with pytest.raises(InvalidInput, match=f'time: invalid duration "{value}"') as caught:
        parse_keep_alive({"keep_alive": value})
    assert caught.value.param == "keep_alive"


@pytest.mark.parametrize("value", [True, [1], {"s": 1}])
def test_other_types_are_400(value: object) -> None:
    with pytest.raises(InvalidInput, match="unsupported duration type"):
        parse_keep_alive({"keep_alive": value})


def test_both_embed_routes_carry_it() -> None:
    assert parse_embed_request({"model": "m", "input": "x", "keep_alive": "5m"}).keep_alive == 300.0
    assert parse_legacy_request({"model": "m", "prompt": "x", "keep_alive": 0}).keep_alive == 0.0
    assert parse_embed_request({"model": "m", "input": "x"}).keep_alive is None
