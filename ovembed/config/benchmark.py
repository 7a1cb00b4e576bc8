"""`ovembed benchmark`: the load generator's options."""

from __future__ import annotations

from dataclasses import dataclass

from ovembed.config.base import EncodingFormat, Scenario, Task, _Checked, _require, option

_EMBEDDINGS_URL = "http://127.0.0.1:8000/v3/embeddings"


@dataclass(frozen=True)
class BenchmarkConfig(_Checked):
    """`ovembed benchmark`: async load generator for OpenAI / Ollama embeddings and rerank servers."""

    api_url: str = option(_EMBEDDINGS_URL,
                          "Endpoint: OpenAI /v3/embeddings or /v1/embeddings, Ollama /api/embed, rerank /v3/rerank "
                          "(Cohere/OVMS) or /rerank (TEI); with --task rerank the default becomes .../v3/rerank")
    task: Task = option(Task.EMBEDDINGS, "embeddings; rerank: each request is one query and --batch_size "
                        "documents (pairs/s = docs/s); sparse: TEI's /embed_sparse (the default URL becomes it)")
    model: str = option("", "Model name sent in requests", required=True)
    dataset: str = option("synthetic", "'synthetic' or a file of texts (one per line, or a JSON list)")
    synthetic_length: int = option(40, "Approximate words per synthetic document")
    batch_size: int = option(1, "Inputs per request")
    concurrency: int = option(1, "Requests in flight")
    request_rate: float = option(float("inf"), "Requests per second (Poisson); inf sends as fast as possible")
    limit: int = option(1000, "Documents to send")
    encoding_format: EncodingFormat = option(EncodingFormat.FLOAT, "Encoding the server is asked for")
    api_key: str | None = option(None, "Bearer token", env="API_KEY")
    json: bool = option(False, "Print the results as JSON")
    seed: int = option(0, "Random seed for synthetic data and arrival times")
    warmup: int = option(1, "Unmeasured requests sent first; they also check the URL, model and key")
    timeout: float = option(600.0, "Seconds to wait for one response before counting it as failed")
    scenario: Scenario = option(Scenario.UNIFORM, "uniform: --concurrency clients alike; mixed: one bulk client "
                                "(--bulk_batch_size inputs per request) plus --concurrency interactive clients "
                                "(--batch_size inputs) for --duration seconds: interactive p50/p99, bulk docs/s")
    bulk_batch_size: int = option(1024, "--scenario mixed: inputs per bulk request")
    duration: float = option(30.0, "--scenario mixed: seconds of sending")

    def _check(self) -> None:
        _require(self.bulk_batch_size >= 1, f"--bulk_batch_size must be at least 1, got {self.bulk_batch_size}")
        _require(self.duration > 0, f"--duration must be positive, got {self.duration}")
        _require(self.scenario is Scenario.UNIFORM or self.task is Task.EMBEDDINGS,
                 "--scenario mixed measures embeddings endpoints")
        _require(self.batch_size >= 1, f"--batch_size must be at least 1, got {self.batch_size}")
        _require(self.concurrency >= 1, f"--concurrency must be at least 1, got {self.concurrency}")
        _require(self.limit >= 1, f"--limit must be at least 1, got {self.limit}")
        _require(self.request_rate > 0, "--request_rate must be positive (inf: as fast as possible)")
        _require(self.timeout > 0, f"--timeout must be positive, got {self.timeout}")
        _require(self.warmup >= 0, f"--warmup cannot be negative, got {self.warmup}")
        _require(self.synthetic_length >= 1, f"--synthetic_length must be at least 1, got {self.synthetic_length}")
        _require(self.task is not Task.TOKEN_EMBED, "--task token_embed is not benchmarked yet (its /v3/rerank: "
                 "--task rerank)")
        _require(self.task is not Task.CLASSIFY, "--task classify is not benchmarked yet")
        _require(self.task is not Task.BGE_M3, "--task bge_m3 is not benchmarked yet (its dense output: --task "
                 "embeddings against the bge_m3 model)")
        if self.task is Task.RERANK and self.api_url == _EMBEDDINGS_URL:
            object.__setattr__(self, "api_url", _EMBEDDINGS_URL.replace("/v3/embeddings", "/v3/rerank"))
        if self.task is Task.SPARSE and self.api_url == _EMBEDDINGS_URL:
            object.__setattr__(self, "api_url", _EMBEDDINGS_URL.replace("/v3/embeddings", "/embed_sparse"))
        _require(self.api_url.rstrip("/").endswith("/embed_sparse") == (self.task is Task.SPARSE),
                 f"--task {self.task.value} does not match --api_url {self.api_url} "
                 "(sparse endpoints end in /embed_sparse)")
        rerank_url = self.api_url.rstrip("/").endswith("/rerank")
        _require(rerank_url == (self.task is Task.RERANK),
                 f"--task {self.task.value} does not match --api_url {self.api_url} "
                 "(rerank endpoints end in /rerank)")
