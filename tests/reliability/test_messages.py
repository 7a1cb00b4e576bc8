"""Error messages say what happened (issue 9, row 11): OpenVINO's real reason, not the first line
of its stack ("Exception from src/inference/src/cpp/core.cpp:84:"). The gzip body (415 naming the
encoding) and control characters in logs are in test_web_safety.py; the reload failure's full
text in the log and its reason in /v1/config, through a live server, in test_model_files.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ovembed.serving.openvino.errors import openvino_reason

pytestmark = pytest.mark.reliability


def _truncated_model(folder: Path) -> Path:
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 64], np.float32, name="x")
    weights = ops.constant(np.random.default_rng(0).random((64, 64), dtype=np.float32))
    xml = folder / "model.xml"
    ov.save_model(ov.Model([ops.matmul(x, weights, False, False)], [x], "tiny"), xml, compress_to_fp16=False)
    os.truncate(xml.with_suffix(".bin"), xml.with_suffix(".bin").stat().st_size // 2)
    return xml


def test_the_reason_of_a_real_openvino_error_is_its_last_useful_line(tmp_path: Path) -> None:
    import openvino as ov

    core = ov.Core()
    with pytest.raises(RuntimeError) as info:
        core.compile_model(core.read_model(_truncated_model(tmp_path)), "CPU")
    assert str(info.value).startswith("Exception from ")  # what used to be shown, and nothing else
    assert openvino_reason(info.value) == "Incorrect weights in bin file!"


def test_the_reason_is_one_bounded_line() -> None:
    text = "Exception from a.cpp:1:\nCheck 'x' failed at b.cpp:2:\n" + "why " * 200 + "\n"
    reason = openvino_reason(RuntimeError(text))
    assert "\n" not in reason and len(reason) == 300 and reason.startswith("why why") and reason.endswith("...")
    assert openvino_reason(RuntimeError("")) == "no details"
