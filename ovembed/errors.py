"""Domain exceptions and the one table that maps them to HTTP / OpenAI / gRPC codes.

Every front end (OpenAI REST, Ollama, KServe REST, gRPC, the CLI) translates errors through
:func:`describe`; nothing else decides which status an error gets.
"""

from __future__ import annotations

from dataclasses import dataclass


class OvembedError(Exception):
    """Base class. ``str(exc)`` is safe to show to a client or a user."""

    param: str | None = None
    retry_after: int | None = None  # whole seconds after which a retry may succeed (HTTP Retry-After)

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param


class InvalidInput(OvembedError):
    """The request is malformed or asks for something impossible."""


class InputTooLong(InvalidInput):
    """An input is longer than the model allows and truncation is off."""

    def __init__(self, length: int, maximum: int, *, index: int | None = None) -> None:
        which = f"input[{index}]" if index is not None else "the input"
        super().__init__(f"{which} has {length} tokens; the model takes at most {maximum}: send truncate=true "
                         "(or chunking) or shorten it", param="input")
        self.length = length
        self.maximum = maximum
        self.index = index


class PayloadTooLarge(OvembedError):
    """The request body or the number of inputs is over the configured limit."""


class Unauthorized(OvembedError):
    """Missing or wrong API key."""


class ModelNotFound(OvembedError):
    """No model with that name is configured (or it was removed)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"The model '{name}' does not exist", param="model")
        self.name = name


class ModelNotReady(OvembedError):
    """The model is configured but still loading (``retry_after`` set), or failed to load."""

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ShuttingDown(ModelNotReady):
    """The server stopped before the request could finish (``--graceful_timeout`` exceeded)."""


class ClientGone(OvembedError):
    """The client went away before the response was ready (logged as 499, never sent)."""


class Overloaded(OvembedError):
    """The model's queue is full. ``retry_after``: whole seconds after which a retry may
    succeed (HTTP ``Retry-After``), None when unknown."""

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(OvembedError):
    """The request's deadline (``--request_timeout``, ``x-request-timeout``, the gRPC deadline)
    passed before its result was ready; its work not yet started was dropped."""


class Forbidden(OvembedError):
    """Refused whoever asks: a browser's cross-site request, a Host the server does not answer to."""


class UnsupportedMediaType(InvalidInput):
    """The body's Content-Type or Content-Encoding is not one the server reads."""


class ConfigError(OvembedError):
    """A model repository, config.json or graph.pbtxt is invalid."""


class ExportError(OvembedError):
    """An export could not be completed; nothing was written."""


class MissingDependency(OvembedError):
    """An optional dependency is not installed; the message says what to install."""


@dataclass(frozen=True)
class ErrorKind:
    status: int  # HTTP status
    type: str  # OpenAI error "type"
    code: str | None  # OpenAI error "code"
    grpc: str  # grpc.StatusCode member name
    log_traceback: bool = False  # a server fault: log it with its traceback and the request id


_INTERNAL = ErrorKind(500, "internal_error", "internal_error", "INTERNAL", log_traceback=True)

# Most specific classes first: the first isinstance match wins.
ERROR_TABLE: tuple[tuple[type[BaseException], ErrorKind], ...] = (
    (InputTooLong, ErrorKind(400, "invalid_request_error", "input_too_long", "INVALID_ARGUMENT")),
    (UnsupportedMediaType, ErrorKind(415, "invalid_request_error", "unsupported_media_type", "INVALID_ARGUMENT")),
    (InvalidInput, ErrorKind(400, "invalid_request_error", None, "INVALID_ARGUMENT")),
    (Forbidden, ErrorKind(403, "permission_error", "forbidden", "PERMISSION_DENIED")),
    (Unauthorized, ErrorKind(401, "authentication_error", "invalid_api_key", "UNAUTHENTICATED")),
    (ModelNotFound, ErrorKind(404, "invalid_request_error", "model_not_found", "NOT_FOUND")),
    (PayloadTooLarge, ErrorKind(413, "invalid_request_error", "payload_too_large", "RESOURCE_EXHAUSTED")),
    (ClientGone, ErrorKind(499, "client_closed_request", "client_closed_request", "CANCELLED")),
    (Overloaded, ErrorKind(429, "rate_limit_error", "overloaded", "RESOURCE_EXHAUSTED")),
    (DeadlineExceeded, ErrorKind(504, "timeout_error", "deadline_exceeded", "DEADLINE_EXCEEDED")),
    (ShuttingDown, ErrorKind(503, "service_unavailable", "shutting_down", "UNAVAILABLE")),
    (ModelNotReady, ErrorKind(503, "service_unavailable", "model_not_ready", "UNAVAILABLE")),
    (ConfigError, ErrorKind(500, "internal_error", "config_error", "INTERNAL", log_traceback=True)),
    (ExportError, ErrorKind(500, "internal_error", "export_error", "INTERNAL", log_traceback=True)),
    (MissingDependency, ErrorKind(500, "internal_error", "missing_dependency", "INTERNAL", log_traceback=True)),
)


def describe(exc: BaseException) -> ErrorKind:
    """Return how ``exc`` is reported. Unknown exceptions are internal errors (500)."""
    for cls, kind in ERROR_TABLE:
        if isinstance(exc, cls):
            return kind
    return _INTERNAL


def public_message(exc: BaseException, request_id: str | None = None) -> str:
    """The message a client may see: our own errors verbatim, anything else generic."""
    if isinstance(exc, OvembedError) and (describe(exc).status < 500
                                            or isinstance(exc, (ModelNotReady, DeadlineExceeded))):
        return exc.message
    suffix = f" (request id {request_id})" if request_id else ""
    return f"Internal server error{suffix}"
