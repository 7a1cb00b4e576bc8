"""``GET /metrics``: Prometheus text exposition of the app's :class:`~ovembed.serving.metrics.Metrics`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.metrics import CONTENT_TYPE, Metrics


async def metrics(request: Request) -> Response:
    collected: Metrics = request.app.state.metrics
    return Response(collected.exposition(), headers={"content-type": CONTENT_TYPE})


def routes() -> list[BaseRoute]:
    return [Route("/metrics", metrics, methods=["GET"])]
