"""ovembed/matryoshka.py: what an export records about shorter vectors, and the check serving applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovembed import matryoshka
from ovembed.errors import ConfigError, InvalidInput


def test_from_source_reads_config_then_model_card(tmp_path: Path) -> None:
    assert matryoshka.from_source(tmp_path) is None
    (tmp_path / "README.md").write_text("---\ntags:\n- sentence-transformers\n- loss:MatryoshkaLoss\n---\n# card\n")
    assert matryoshka.from_source(tmp_path) == ()
    (tmp_path / "config.json").write_text('{"matryoshka_dimensions": [768, 256, 64]}')
    assert matryoshka.from_source(tmp_path) == (64, 256, 768)
    (tmp_path / "config.json").write_text('{"is_matryoshka": true}')
    assert matryoshka.from_source(tmp_path) == ()
    (tmp_path / "README.md").write_text("# no front matter\n- matryoshka\n")
    (tmp_path / "config.json").write_text("{}")
    assert matryoshka.from_source(tmp_path) is None


def test_declared_and_record(tmp_path: Path) -> None:
    assert matryoshka.declared(tmp_path) is None
    (tmp_path / "config.json").write_text('{"matryoshka_dimensions": [128, 64]}')
    assert matryoshka.declared(tmp_path) == [64, 128]
    assert matryoshka.from_record({"matryoshka_dimensions": [128, 64]}) == (64, 128)
    assert matryoshka.from_record({}) is None
    with pytest.raises(ConfigError, match="matryoshka_dimensions"):
        matryoshka.from_record({"matryoshka_dimensions": "any"})


def test_check() -> None:
    matryoshka.check(None, None, model="m", size=8)
    matryoshka.check(8, None, model="m", size=8)  # the full size is always fine
    matryoshka.check(3, (), model="m", size=8)
    matryoshka.check(4, (4,), model="m", size=8)
    with pytest.raises(InvalidInput, match="was not trained for shorter vectors"):
        matryoshka.check(4, None, model="m", size=8)
    with pytest.raises(InvalidInput, match="was trained for 'dimensions' 2, 4 only, got 3"):
        matryoshka.check(3, (2, 4), model="m", size=8)
    with pytest.raises(InvalidInput, match="must be at most 8"):
        matryoshka.check(9, (), model="m", size=8)
