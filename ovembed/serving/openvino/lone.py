"""Lone queries: the static-shape copies compiled for them, and the timing at load that decides
whether a lone query is padded and whether the copies are kept."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from ovembed.serving.openvino.errors import openvino_reason

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger("ovembed.serving")


# Lone queries' lengths (tokens) timed at load, exact and padded, to decide whether padding a lone
# query pays for this model on this machine: see OpenVINOExecutor.time_lone.
LONE_LENGTHS = (5, 7, 13, 10, 6, 15, 12, 9, 21, 27)  # padded to 8, most change shape
# Widths (tokens) of the static-shape copies a model may get for lone queries, in the order they
# are compiled while they fit in --lone_shapes_max_mb (the most useful first: most queries are
# 9-16 tokens, then 8 or fewer); a lone query of up to 32 tokens is padded to the narrowest that fits.
LONE_WIDTHS = (16, 8, 32)
# The copies cost memory, so they are kept only when clearly faster: their lone queries' p50 at most
# this fraction of the dynamic graph's (int8 MiniLM measured 0.64, static int8 0.73; fp32 0.93-1.07,
# which noise alone would decide).
LONE_STATIC_GAIN = 0.9
# The warm-up round of that timing (20-30 lone queries, most of them a new shape: MiniLM 0.1-0.3 s
# on 2 cores) may take this long; a slower model (a lone query over ~30 ms, where a shape change
# matters less) is not timed further and keeps the default, padded.
LONE_BUDGET_S = 1.0


LoneShapes = dict[int, "ov.CompiledModel"]  # static-shape copies by width (OpenVINOExecutor.set_lone_shapes)


def compile_static_copies(core: ov.Core, model: ov.Model | None, widths: tuple[int, ...], device: str,
                 config: dict[str, str], label: str = "model", *, budget: int, estimate: int) -> LoneShapes:
    """``model`` compiled for one row of each width in turn (every input is ``[batch, sequence]``),
    while the copies fit in ``budget`` bytes. Each copy holds its own repacked weights: one is
    expected to take ``estimate`` (the weights file's size) or what the last one took when more
    (resident memory growth, which misses memory freed earlier and reused); a model whose first
    copy would not fit gets none."""
    import openvino as ov

    out: LoneShapes = {}
    used, expected = 0, estimate
    for width in widths:
        if model is None or used + expected > budget:
            break
        before = _resident_bytes()
        try:
            fixed = model.clone()
            fixed.reshape({port: ov.PartialShape([1, width]) for port in fixed.inputs})
            out[width] = core.compile_model(fixed, device, config)
        except RuntimeError as exc:  # a graph that cannot take a static shape: serve it without copies
            log.warning("%s: no static-shape copy for %d tokens: %s", label, width, openvino_reason(exc))
            break
        expected = max(_resident_bytes() - before, estimate)
        used += expected
    if out:
        log.info("%s: static-shape copies for lone queries of up to %s tokens compiled (%.0f MB of "
                 "--lone_shapes_max_mb %.0f); timed next", label, ", ".join(map(str, sorted(out))),
                 used / 2**20, budget / 2**20)
    return out


def _resident_bytes() -> int:
    """This process's resident memory (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
