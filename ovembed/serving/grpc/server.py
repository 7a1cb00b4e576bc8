"""Start and stop the KServe v2 gRPC server on the running event loop (``grpc.aio``).

:func:`grpc_server` is what the app's lifespan enters when ``--port`` is set, so gRPC and REST
share one process, one event loop and one registry, and gRPC stops (finishing in-flight calls
within ``--graceful_timeout``) before the registry does. Given the app's ``stopping`` event, it
starts draining as soon as the event is set (when HTTP stops accepting), so both front ends
drain together within the one timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import grpc

from ovembed.config import ServeConfig
from ovembed.serving.api import Registry
from ovembed.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from ovembed.serving.grpc.service import InferenceServicer

if TYPE_CHECKING:
    from ovembed.serving.metrics import Metrics
    from ovembed.serving.tracing import Tracer

logger = logging.getLogger("ovembed.serving")


def address(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals bracketed."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


async def start(registry: Registry, *, host: str, port: int, api_key: str | None, max_inputs: int,
                max_message_bytes: int, metrics: Metrics | None = None,
                tracer: Tracer | None = None, request_timeout: float = 0.0) -> tuple[grpc.aio.Server, int]:
    """A started server and the port it listens on (``port=0`` picks a free one)."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),  # REST's --max_body_bytes
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
    ])
    servicer = InferenceServicer(registry, api_key=api_key, max_inputs=max_inputs, metrics=metrics,
                                  tracer=tracer, request_timeout=request_timeout)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    where = address(host, port)
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError as exc:  # grpcio raises when it cannot bind
        raise OSError(f"KServe gRPC cannot listen on {where} (address in use?)") from exc
    if bound == 0:  # older grpcio reports failure this way
        raise OSError(f"KServe gRPC cannot listen on {where} (address in use?)")
    await server.start()
    logger.info("KServe gRPC listening on %s", address(host, bound))
    return server, bound


async def stop(server: grpc.aio.Server, *, grace: float) -> None:
    """Refuse new calls, let in-flight ones finish for up to ``grace`` seconds, then cancel them."""
    await server.stop(grace)


@asynccontextmanager
async def grpc_server(cfg: ServeConfig, registry: Registry, *, api_key: str | None,
                      metrics: Metrics | None = None, stopping: asyncio.Event | None = None,
                      tracer: Tracer | None = None) -> AsyncIterator[int]:
    """Serve gRPC on ``cfg.grpc_bind_address:cfg.port`` for the duration; yields the bound port.

    Draining starts when ``stopping`` is set, or at the latest when the context exits.
    """
    server, bound = await start(registry, host=cfg.grpc_bind_address, port=cfg.port, api_key=api_key,
                                max_inputs=cfg.max_inputs, max_message_bytes=cfg.max_body_bytes,
                                metrics=metrics, tracer=tracer, request_timeout=cfg.request_timeout)

    async def stop_when_asked(event: asyncio.Event) -> None:
        await event.wait()
        logger.info("KServe gRPC: draining in-flight calls (up to %.0f s)", cfg.graceful_timeout)
        await stop(server, grace=cfg.graceful_timeout)

    early = asyncio.create_task(stop_when_asked(stopping)) if stopping is not None else None
    try:
        yield bound
    finally:
        if early is not None and stopping is not None and stopping.is_set():
            await early  # already draining, against the same deadline as HTTP
        else:
            if early is not None:
                early.cancel()
            await stop(server, grace=cfg.graceful_timeout)
        logger.info("KServe gRPC stopped")
