"""Export the packaged all-MiniLM-L6-v2 at every weight format; print wall time, peak memory,
IR size on disk and the verification cosine.

    .venv/bin/python -m benchmarks.export_formats [--formats fp32,fp16,int8,int4] [--json out.json]

Each export runs `ovembed export` in its own process so peak RSS is that export's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import minilm_source


def _export(source: Path, repo: Path, fmt: str) -> dict[str, float | str]:
    cmd = [sys.executable, "-m", "ovembed", "export", "--source_model", str(source), "--model_name", f"minilm-{fmt}",
           "--model_repository_path", str(repo), "--weight_format", fmt]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"export {fmt} failed:\n{err.read().decode()[-2000:]}")
    folder = repo / f"minilm-{fmt}"
    record = json.loads((folder / "ovembed_model.json").read_text())
    return {
        "format": fmt,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "ir_mb": round((folder / "openvino_model.bin").stat().st_size / 1e6, 1),
        "min_cosine": round(float(record["verification"]["min_cosine"]), 6),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", default="fp32,fp16,int8,int4")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    source = minilm_source()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            rows.append(_export(source, Path(tmp), fmt))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"{'format':<7} {'wall s':>7} {'peak RSS MB':>12} {'IR MB':>7} {'min cosine':>11}")
    for r in rows:
        print(f"{r['format']:<7} {r['wall_s']:>7} {r['peak_rss_mb']:>12} {r['ir_mb']:>7} {r['min_cosine']:>11}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
