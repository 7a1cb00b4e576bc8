"""Prometheus metrics (``GET /metrics``), one :class:`Metrics` per app.

Every app owns its own ``CollectorRegistry`` (the process-wide default registry is never
touched), so tests can build many apps and each counts only its own traffic. What is counted
where:

- requests and their latency: REST in :class:`~ovembed.serving.http.middleware.RequestContextMiddleware`
  (:meth:`Metrics.observe_http`), gRPC in the servicer's RPC wrapper (:meth:`Metrics.observe_request`);
- batches, tokens and inference time: each model's batcher through a :class:`BatchMetrics`
  (the batcher only knows the small :class:`~ovembed.serving.api.BatchObserver` protocol);
- model states and queue depths: read from the registry at scrape time, so they are always
  current and a removed model disappears.

``/metrics`` is open (no API key), like the health probes: Prometheus scrapers rarely send
bearer tokens, and it shows model names and traffic volumes, never request contents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from ovembed.errors import ModelNotFound
from ovembed.serving.api import CacheStats, ModelState, Registry

PREFIX = "ovembed"
CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "unmatched"  # endpoint label of a path no route serves (keeps label values bounded)
ENDPOINT_STATE = "endpoint"  # scope["state"] key: the endpoint label, when the app already knows it

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def route_label(route: Route) -> str:
    """The route's path template without converters: ``/v2/models/{model_path}/infer``."""
    return _CONVERTER.sub(r"{\1}", route.path)


class BatchMetrics:
    """One model's batch metrics; implements :class:`ovembed.serving.api.BatchObserver`."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._tokens = metrics.tokens.labels(model)
        self._size = metrics.batch_size.labels(model)
        self._padded = metrics.batch_tokens.labels(model)
        self._inference = metrics.inference.labels(model)
        self._failures = metrics.batch_failures.labels(model)
        self._refused = metrics.refused_by_wait.labels(model)
        self._expired = metrics.deadline_expired.labels(model)

    def batch_started(self, size: int, tokens: int, padded_tokens: int) -> None:
        self._tokens.inc(tokens)
        self._size.observe(size)
        self._padded.observe(padded_tokens)

    def batch_finished(self, size: int, seconds: float, failed: bool) -> None:
        if failed:
            self._failures.inc()
        else:
            self._inference.observe(seconds)

    def refused_by_wait(self) -> None:
        self._refused.inc()

    def deadline_expired(self) -> None:
        self._expired.inc()


class _RegistryCollector(Collector):
    """Model states and queue depths, read from the serving registry at scrape time."""

    def __init__(self) -> None:
        self.registry: Registry | None = None

    def describe(self) -> list[Metric]:
        return [self._states(), self._queue(), *self._cache(None)]  # empty families: names and types only

    def collect(self) -> Iterator[Metric]:
        states, queue = self._states(), self._queue()
        registry = self.registry
        if registry is not None:
            for name in registry.names():
                try:
                    state = registry.status(name).state
                except ModelNotFound:  # removed while we iterate
                    continue
                for candidate in ModelState:
                    states.add_metric([name, candidate.value], 1.0 if candidate is state else 0.0)
            for servable in registry.available():
                queue.add_metric([servable.info.name], float(servable.queue_depth))
        yield states
        yield queue
        yield from self._cache(registry.cache_stats() if registry is not None else None)

    @staticmethod
    def _cache(stats: CacheStats | None) -> list[Metric]:
        """The embedding cache (--cache_bytes): families without samples when it is off."""
        hits = CounterMetricFamily(f"{PREFIX}_cache_hits", "Inputs answered from the embedding cache")
        misses = CounterMetricFamily(f"{PREFIX}_cache_misses", "Inputs the embedding cache did not hold")
        size = GaugeMetricFamily(f"{PREFIX}_cache_bytes", "Bytes held by the embedding cache")
        entries = GaugeMetricFamily(f"{PREFIX}_cache_entries", "Inputs held by the embedding cache")
        if stats is not None:
            hits.add_metric([], stats.hits)
            misses.add_metric([], stats.misses)
            size.add_metric([], stats.bytes)
            entries.add_metric([], stats.entries)
        return [hits, misses, size, entries]

    @staticmethod
    def _states() -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_model_state",
                                 "1 for the state each configured model is in (LOADING, AVAILABLE, UNAVAILABLE)",
                                 labels=["model", "state"])

    @staticmethod
    def _queue() -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_queue_depth",
                                 "Documents waiting in the model's batcher queue", labels=["model"])


class Metrics:
    """The app's metrics and their registry. ``routes`` name the endpoints of REST requests."""

    def __init__(self, routes: Sequence[BaseRoute] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._routes = [(r, route_label(r)) for r in routes if isinstance(r, Route)]
        self._labels = {id(r): label for r, label in self._routes}
        reg = self.registry
        self.requests = Counter(f"{PREFIX}_requests", "Requests by model, endpoint and status",
                                ["model", "endpoint", "status"], registry=reg)
        self.latency = Histogram(f"{PREFIX}_request_duration_seconds",
                                 "Time from request arrival to the end of the response, by endpoint",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=reg)
        self.tokens = Counter(f"{PREFIX}_tokens", "Tokens sent to the engine (special tokens "
                              "included, padding excluded)", ["model"], registry=reg)
        self.batch_size = Histogram(f"{PREFIX}_batch_size", "Documents per inference batch",
                                    ["model"], buckets=_SIZE_BUCKETS, registry=reg)
        self.batch_tokens = Histogram(f"{PREFIX}_batch_tokens",
                                      "Padded tokens per inference batch (batch size x padded length)",
                                      ["model"], buckets=_TOKEN_BUCKETS, registry=reg)
        self.inference = Histogram(f"{PREFIX}_inference_duration_seconds",
                                   "Engine time of one batch, from dispatch to results",
                                   ["model"], buckets=_INFERENCE_BUCKETS, registry=reg)
        self.batch_failures = Counter(f"{PREFIX}_batch_failures", "Batches the engine failed",
                                      ["model"], registry=reg)
        self.refused_by_wait = Counter(f"{PREFIX}_refused_by_wait", "Requests refused with 429 because their "
                                       "expected queue wait was over --max_queue_wait_seconds",
                                       ["model"], registry=reg)
        self.deadline_expired = Counter(f"{PREFIX}_deadline_expired", "Requests whose deadline (--request_timeout, "
                                        "x-request-timeout, gRPC deadline) passed before their result (504)",
                                        ["model"], registry=reg)
        self.reloads = Counter(f"{PREFIX}_config_reloads",
                               "Configuration reload passes by result (changed, unchanged, error)",
                               ["result"], registry=reg)
        self._collector = _RegistryCollector()
        reg.register(self._collector)

    def watch(self, registry: Registry) -> None:
        """Report the states and queue depths of ``registry``'s models from now on."""
        self._collector.registry = registry

    def batch_observer(self, model: str) -> BatchMetrics:
        return BatchMetrics(self, model)

    def observe_request(self, endpoint: str, model: str, status: str, seconds: float) -> None:
        self.requests.labels(model, endpoint, status).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_http(self, scope: Scope, status: int, seconds: float) -> None:
        """One finished REST request; the model label is what the handler resolved, if any."""
        ctx = (scope.get("state") or {}).get("context")
        model = getattr(ctx, "model", None)
        self.observe_request(self.endpoint(scope), model if isinstance(model, str) else "",
                             str(status), seconds)

    def endpoint(self, scope: Scope) -> str:
        """The path template of the route serving ``scope`` (also for requests refused before
        routing, e.g. 401); :data:`UNMATCHED` when none does. Starlette's router leaves the route it
        chose in ``scope["route"]``, and the 404 handler :data:`UNMATCHED` in ``scope["state"]``
        (:data:`ENDPOINT_STATE`); only requests the router never saw are matched here."""
        routed = self._labels.get(id(scope.get("route"))) or (scope.get("state") or {}).get(ENDPOINT_STATE)
        if routed is not None:
            return str(routed)
        partial = None
        for route, label in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return label
            if match is Match.PARTIAL and partial is None:
                partial = label  # the path exists, the method does not (405)
        return partial or UNMATCHED

    def observe_reload(self, result: str) -> None:
        self.reloads.labels(result).inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
