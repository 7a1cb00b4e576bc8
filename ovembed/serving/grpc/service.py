"""KServe v2 gRPC (``inference.GRPCInferenceService``) over the same registry as REST.

Validation (:mod:`ovembed.serving.wire.kserve_infer`), auth and errors
(:func:`ovembed.errors.describe`, its ``grpc`` status name) are shared with the REST front end,
so a request is accepted or refused the same way on both. What REST puts in headers goes in
metadata here: ``authorization: Bearer <key>`` and ``x-request-id`` in; ``x-request-id`` and,
for ModelInfer, the ``x-*-time`` timings out (trailing metadata).

ModelReady answers ready=false for a model that is not configured (Triton's behaviour, so
``tritonclient.grpc``'s ``is_model_ready`` returns False), and ModelConfig (Triton's extension)
returns the model's configuration in Triton's shape.

The probes (ServerLive, ServerReady, ModelReady) need no key, like ``/v2/health/*`` and
``/v2/models/<name>/ready``; every other RPC does when a key is configured.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from ovembed.errors import InvalidInput, ModelNotFound, describe, public_message
from ovembed.serving import tracing
from ovembed.serving.api import DEADLINE, ModelState, Registry
from ovembed.serving.context import (
    REQUEST_ID,
    TIMEOUT_HEADER,
    RequestContext,
    check_bearer,
    log_access,
    request_deadline,
    request_id,
    timing_values,
)
from ovembed.serving.grpc import grpc_predict_v2_pb2 as pb
from ovembed.serving.usecases import models
from ovembed.serving.usecases.embed import EmbedRequest, embed
from ovembed.serving.wire import kserve
from ovembed.serving.wire.kserve_infer import (
    InferRequest,
    check_outputs,
    fp32_bytes,
    split_bytes_tensor,
    texts_from_tensor,
)
from ovembed.serving.wire.retrieval import parse_retrieval_parameters

if TYPE_CHECKING:
    from ovembed.serving.metrics import Metrics
    from ovembed.serving.tracing import Tracer

logger = logging.getLogger("ovembed.serving")

Metadata = tuple[tuple[str, str], ...]
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_Handler = Callable[["InferenceServicer", _Req, RequestContext], Awaitable[tuple[_Resp, Metadata]]]
_Rpc = Callable[["InferenceServicer", _Req, grpc.aio.ServicerContext], Awaitable[_Resp]]

SERVICE = "inference.GRPCInferenceService"  # RPCs are counted under endpoint "/<SERVICE>/<method>"


def _rpc(*, protected: bool = True) -> Callable[[_Handler[_Req, _Resp]], _Rpc[_Req, _Resp]]:
    """Wrap a handler ``(self, request) -> (response, trailing metadata)`` into an RPC method:
    request id, auth, error mapping through the error table, access log, metrics, server span."""

    def decorate(handler: _Handler[_Req, _Resp]) -> _Rpc[_Req, _Resp]:
        method = handler.__name__
        endpoint = f"/{SERVICE}/{method}"
        quiet = not protected  # probes are logged at DEBUG, as on REST

        @functools.wraps(handler)
        async def rpc(self: InferenceServicer, request: _Req, context: grpc.aio.ServicerContext) -> _Resp:
            start = time.perf_counter_ns()
            metadata = _metadata(context.invocation_metadata())
            rid = request_id(metadata.get("x-request-id"))
            trace = None if self._tracer is None else tracing.start_grpc(self._tracer, SERVICE, method, metadata, rid)
            ctx = RequestContext(rid, start, trace=trace)
            token = REQUEST_ID.set(rid)
            deadline_token = None
            code = grpc.StatusCode.OK
            try:
                if protected:
                    self._check_key(metadata.get("authorization"))
                    deadline_token = DEADLINE.set(request_deadline(
                        metadata.get(TIMEOUT_HEADER), self._request_timeout, time.monotonic(),
                        context.time_remaining()))
                response, trailing = await handler(self, request, ctx)
                if trace is not None:
                    trace.rendered()
                context.set_trailing_metadata((("x-request-id", rid), *trailing))
                return response
            except asyncio.CancelledError:  # the client went away or the server is stopping
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                # Not context.abort(): its AbortError is kept in a reference cycle with grpc's
                # RPC state, and its traceback (and __context__, this error) holds every frame
                # of the request: the request message and its tokenized batch stayed alive
                # until a full gc pass. A status set on the context is sent instead of the
                # (absent) response.
                code = grpc.StatusCode[describe(exc).grpc]
                context.set_code(code)
                context.set_details(self._message(method, exc, rid))
                retry = getattr(exc, "retry_after", None)  # REST's Retry-After header, as metadata
                context.set_trailing_metadata((("x-request-id", rid),
                                               *((("retry-after", str(retry)),) if retry is not None else ())))
                return None  # type: ignore[return-value]
            finally:
                elapsed = time.perf_counter_ns() - start
                _log(method, context.peer(), code, elapsed, quiet=quiet)
                if self._metrics is not None:
                    self._metrics.observe_request(endpoint, ctx.model or "", code.name, elapsed / 1e9)
                if trace is not None:
                    tracing.finish_grpc(trace, code.name, code.value[0], ctx.model)
                REQUEST_ID.reset(token)
                if deadline_token is not None:
                    DEADLINE.reset(deadline_token)

        return rpc

    return decorate


def _metadata(pairs: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str]:
    return {key: value for key, value in pairs or () if isinstance(value, str)}


def _log(method: str, peer: str, code: grpc.StatusCode, elapsed_ns: int, *, quiet: bool) -> None:
    level = logging.DEBUG if quiet and code is grpc.StatusCode.OK else logging.INFO
    log_access(level, peer, f"gRPC {method}", code.name, elapsed_ns)


class InferenceServicer:
    """The six KServe v2 RPCs and Triton's ModelConfig. Registered with the generated
    ``add_GRPCInferenceServiceServicer_to_server`` (which only needs these methods)."""

    def __init__(self, registry: Registry, *, api_key: str | None, max_inputs: int,
                 metrics: Metrics | None = None, tracer: Tracer | None = None,
                 request_timeout: float = 0.0) -> None:
        self._registry = registry
        self._request_timeout = request_timeout
        self._key = api_key.encode() if api_key is not None else None
        self._max_inputs = max_inputs
        self._metrics = metrics
        self._tracer = tracer

    # --- probes ----------------------------------------------------------------------------

    @_rpc(protected=False)
    async def ServerLive(self, request: pb.ServerLiveRequest, ctx: RequestContext
                         ) -> tuple[pb.ServerLiveResponse, Metadata]:
        return pb.ServerLiveResponse(live=True), ()

    @_rpc(protected=False)
    async def ServerReady(self, request: pb.ServerReadyRequest, ctx: RequestContext
                          ) -> tuple[pb.ServerReadyResponse, Metadata]:
        return pb.ServerReadyResponse(ready=self._registry.ready), ()

    @_rpc(protected=False)
    async def ModelReady(self, request: pb.ModelReadyRequest, ctx: RequestContext
                         ) -> tuple[pb.ModelReadyResponse, Metadata]:
        try:
            status = models.status(self._registry, ctx, request.name, request.version)
        except ModelNotFound:  # Triton answers ready=false, and tritonclient's is_model_ready() returns False
            return pb.ModelReadyResponse(ready=False), ()
        return pb.ModelReadyResponse(ready=status.state is ModelState.AVAILABLE), ()

    # --- metadata --------------------------------------------------------------------------

    @_rpc()
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, ctx: RequestContext
                             ) -> tuple[pb.ServerMetadataResponse, Metadata]:
        return pb.ServerMetadataResponse(**kserve.server_metadata()), ()

    @_rpc()
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, ctx: RequestContext
                            ) -> tuple[pb.ModelMetadataResponse, Metadata]:
        servable, status = models.servable(self._registry, ctx, request.name, request.version)
        meta = kserve.model_metadata(servable.info, status)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]], outputs=[tensor(**t) for t in meta["outputs"]],
        ), ()

    @_rpc()
    async def ModelConfig(self, request: pb.ModelConfigRequest, ctx: RequestContext
                          ) -> tuple[pb.ModelConfigResponse, Metadata]:
        """Triton's extension: the model's configuration (``tritonclient.grpc.get_model_config``)."""
        servable, _ = models.servable(self._registry, ctx, request.name, request.version)
        config = kserve.model_config(servable.info)
        return pb.ModelConfigResponse(config=pb.ModelConfig(
            name=config["name"], platform=config["platform"], backend=config["backend"],
            max_batch_size=config["max_batch_size"],
            input=[pb.ModelInput(**t) for t in config["input"]],
            output=[pb.ModelOutput(**t) for t in config["output"]],
        )), ()

    # --- inference -------------------------------------------------------------------------

    @_rpc()
    async def ModelInfer(self, request: pb.ModelInferRequest, ctx: RequestContext
                         ) -> tuple[pb.ModelInferResponse, Metadata]:
        name = request.model_name
        models.status(self._registry, ctx, name, request.model_version)  # NOT_FOUND before INVALID_ARGUMENT
        req = parse_infer_request(request, max_inputs=self._max_inputs)  # INVALID_ARGUMENT
        result = await embed(self._registry, ctx, EmbedRequest(name, req.texts, truncate=req.truncate,
                                                               version=request.model_version,
                                                               **req.retrieval.request_fields()))
        response = pb.ModelInferResponse(model_name=result.info.name, model_version=str(result.version),
                                         id=request.id)
        response.outputs.add(name=kserve.OUTPUT_NAME, datatype=kserve.OUTPUT_DATATYPE,
                             shape=list(result.vectors.shape))
        response.raw_output_contents.append(fp32_bytes(result.vectors))
        return response, tuple(timing_values(result.timings, ctx.elapsed()).items())

    # --- helpers ---------------------------------------------------------------------------

    def _check_key(self, header: str | None) -> None:
        """The same rule and messages as REST's AuthMiddleware (constant-time compare)."""
        if self._key is not None:
            check_bearer(header, self._key, where="the metadata 'authorization")

    @staticmethod
    def _message(method: str, exc: Exception, rid: str) -> str:
        """What the client sees; server errors are logged with their traceback."""
        if describe(exc).log_traceback:
            logger.error("gRPC %s failed (request id %s)", method, rid,
                         exc_info=(type(exc), exc, exc.__traceback__))
        return public_message(exc, rid)


def parse_infer_request(request: pb.ModelInferRequest, *, max_inputs: int) -> InferRequest:
    """The texts and options of a ModelInfer request (raw or typed BYTES contents)."""
    if len(request.inputs) != 1:
        raise InvalidInput(f"ModelInfer takes exactly one input '{kserve.INPUT_NAME}', "
                           f"got {len(request.inputs)}", param="inputs")
    tensor = request.inputs[0]
    elements: list[bytes]
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise InvalidInput("raw_input_contents must have one entry per input", param="inputs")
        if tensor.contents.bytes_contents:
            raise InvalidInput("Give the input in raw_input_contents or in contents, not both",
                               param="inputs")
        elements = split_bytes_tensor(request.raw_input_contents[0])
    else:
        elements = list(tensor.contents.bytes_contents)
    texts = texts_from_tensor(tensor.name, tensor.datatype, list(tensor.shape), elements,
                              max_inputs=max_inputs)
    check_outputs(output.name for output in request.outputs)
    return InferRequest(texts=texts, id=request.id, truncate=_bool_param(request.parameters, "truncate"),
                        retrieval=parse_retrieval_parameters(_plain_params(request.parameters)))


def _plain_params(params: Mapping[str, Any]) -> dict[str, object]:
    """InferParameter oneofs as plain values (bool, int, str), for the shared parameter reader."""
    out: dict[str, object] = {}
    for key, param in params.items():
        which = param.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(param, which)
    return out


def _bool_param(params: Mapping[str, Any], key: str) -> bool | None:
    if key not in params:
        return None
    param = params[key]
    if param.WhichOneof("parameter_choice") != "bool_param":
        raise InvalidInput(f"Parameter '{key}' must be a bool_param", param=key)
    return bool(param.bool_param)
