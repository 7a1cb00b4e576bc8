"""Start and stop the KServe v2 gRPC server on the running event loop (``grpc.aio``).

:func:`grpc_server` is what the app's lifespan enters when ``--port`` is set, so gRPC and REST
share one process, one event loop and one registry, and gRPC stops (finishing in-flight calls
within ``--graceful_timeout``) before the registry does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from ovembed.config import ServeConfig
from ovembed.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from ovembed.serving.grpc.service import InferenceServicer
from ovembed.serving.servable import Registry

logger = logging.getLogger("ovembed.serving")


def address(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals bracketed."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


async def start(registry: Registry, *, host: str, port: int, api_key: str | None, max_inputs: int,
                max_message_bytes: int) -> tuple[grpc.aio.Server, int]:
    """A started server and the port it listens on (``port=0`` picks a free one)."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),  # REST's --max_body_bytes
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
    ])
    servicer = InferenceServicer(registry, api_key=api_key, max_inputs=max_inputs)
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
async def grpc_server(cfg: ServeConfig, registry: Registry, *, api_key: str | None) -> AsyncIterator[int]:
    """Serve gRPC on ``cfg.grpc_bind_address:cfg.port`` for the duration; yields the bound port."""
    server, bound = await start(registry, host=cfg.grpc_bind_address, port=cfg.port, api_key=api_key,
                                max_inputs=cfg.max_inputs, max_message_bytes=cfg.max_body_bytes)
    try:
        yield bound
    finally:
        await stop(server, grace=cfg.graceful_timeout)
        logger.info("KServe gRPC stopped")
