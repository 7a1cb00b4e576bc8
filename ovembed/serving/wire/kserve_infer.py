"""KServe v2 inference for embeddings: a BYTES tensor of texts in, an FP32 ``[N, dim]`` tensor out.

Both front ends validate through here, so REST (``POST /v2/models/<name>/infer``) and gRPC
(``ModelInfer``, :mod:`ovembed.serving.grpc.service`) accept and reject the same requests:

- exactly one input, named and typed as the model metadata advertises (``input``, ``BYTES``),
  shape ``[N]`` (``[N, 1]`` is accepted too: Triton clients often add a trailing 1);
- each element non-empty UTF-8 text; at most ``--max_inputs`` of them (413 / RESOURCE_EXHAUSTED);
- requested outputs, if any, name ``embedding``;
- the optional request parameter ``truncate`` (bool) overrides the model's default; the retrieval
  parameters (``prompt_name``, ``input_type``, ``prompt``, ``truncation_direction``, ``chunking``,
  ``chunk_size``, ``chunk_overlap``, ``max_chunks``) are
  :func:`ovembed.serving.wire.retrieval.parse_retrieval_parameters`'s.

REST speaks KServe v2 JSON plus Triton's binary tensor data extension, which is what
``tritonclient.http`` sends by default: the JSON header is followed by raw tensor bytes, its
length given in the ``Inference-Header-Content-Length`` header; an input with
``parameters.binary_data_size`` takes its elements from those bytes (each a little-endian
uint32 length, then that many bytes). Outputs come back the same way when asked for with
``parameters.binary_data`` on the output, or ``parameters.binary_data_output`` on the request.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.serving.wire import fields
from ovembed.serving.wire.kserve import (
    INPUT_DATATYPE,
    INPUT_NAME,
    OUTPUT_DATATYPE,
    OUTPUT_NAME,
)
from ovembed.serving.wire.retrieval import RetrievalFields, parse_retrieval_parameters

HEADER_LENGTH = "inference-header-content-length"
BINARY_CONTENT_TYPE = "application/octet-stream"

_LENGTH = struct.Struct("<I")
_SIGNATURE = f"the model takes one input '{INPUT_NAME}' ({INPUT_DATATYPE}, shape [-1])"


@dataclass(frozen=True)
class InferRequest:
    """A parsed, validated inference request."""

    texts: tuple[str, ...]
    id: str = ""  # echoed in the response
    truncate: bool | None = None  # None: the model's default
    retrieval: RetrievalFields = RetrievalFields()  # prompts, truncation direction, chunking (parameters)
    binary_output: bool = False  # REST only: answer with the binary tensor data extension


# --- shared validation ---------------------------------------------------------------------

def texts_from_tensor(name: str, datatype: str, shape: Sequence[int], elements: Sequence[bytes | str],
                      *, max_inputs: int) -> tuple[str, ...]:
    """The texts of the one input tensor, checked against its declared name, type and shape."""
    check_signature(name, datatype)
    count = _count(shape)
    fields.check_count(count, max_inputs, param="inputs")
    if len(elements) != count:
        raise InvalidInput(f"Input '{name}' has shape {list(shape)} but {len(elements)} elements",
                           param="inputs")
    return tuple(_text(element, i) for i, element in enumerate(elements))


def check_signature(name: str, datatype: str) -> None:
    """The input is the one the metadata advertises."""
    if name != INPUT_NAME:
        raise InvalidInput(f"Unknown input '{name}': {_SIGNATURE}", param="inputs")
    if datatype != INPUT_DATATYPE:
        raise InvalidInput(f"Input '{name}' must have datatype {INPUT_DATATYPE}, got '{datatype}'",
                           param="inputs")


def _count(shape: Sequence[int]) -> int:
    dims = list(shape)
    if not (len(dims) == 1 or (len(dims) == 2 and dims[1] == 1)) or dims[0] < 0:
        raise InvalidInput(f"Input '{INPUT_NAME}' must have shape [N] (or [N, 1]), got {dims}",
                           param="inputs")
    if dims[0] == 0:
        raise InvalidInput(f"Input '{INPUT_NAME}' must not be empty", param="inputs")
    return dims[0]


def _text(element: bytes | str, index: int) -> str:
    if isinstance(element, bytes):
        try:
            element = element.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"'{INPUT_NAME}[{index}]' is not valid UTF-8", param="inputs") from None
    if not element:
        raise InvalidInput(f"'{INPUT_NAME}[{index}]' must not be an empty string", param="inputs")
    return element


def check_outputs(names: Iterable[str]) -> None:
    """Requested outputs may only name the one output there is."""
    for name in names:
        if name != OUTPUT_NAME:
            raise InvalidInput(f"Unknown output '{name}': the model's only output is '{OUTPUT_NAME}'",
                               param="outputs")


def split_bytes_tensor(raw: bytes) -> list[bytes]:
    """Elements of a serialized BYTES tensor: each a little-endian uint32 length, then the bytes."""
    view = memoryview(raw)
    out: list[bytes] = []
    offset = 0
    while offset < len(view):
        if offset + _LENGTH.size > len(view):
            raise InvalidInput("Malformed BYTES tensor: truncated element length", param="inputs")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + length > len(view):
            raise InvalidInput("Malformed BYTES tensor: element longer than the data", param="inputs")
        out.append(bytes(view[offset:offset + length]))
        offset += length
    return out


# --- REST: KServe v2 JSON with the binary tensor data extension -----------------------------

def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary tensor data) of a request body."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses (a 500 before)
    length = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else -1
    if not 0 <= length <= len(body):
        shown = header_length.encode("unicode_escape").decode("ascii")[:40]
        raise InvalidInput(f"Inference-Header-Content-Length must be an integer between 0 and the "
                           f"body size ({len(body)}), got {shown!r}")
    return body[:length], body[length:]


def parse_rest_request(header: fields.JsonObject, binary: bytes, *, max_inputs: int) -> InferRequest:
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string", param="id")
    params = _object(header, "parameters")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidInput(f"'inputs' must be a list of one tensor: {_SIGNATURE}", param="inputs")
    texts = _rest_input(inputs[0], binary, max_inputs=max_inputs)
    binary_output = fields.optional_bool(params, "binary_data_output") or False
    outputs = header.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise InvalidInput("'outputs' must be a list of objects", param="outputs")
        check_outputs(fields.required_str(o, "name") for o in outputs)
        for output in outputs:  # a per-output choice wins over the request-wide one
            choice = fields.optional_bool(_object(output, "parameters"), "binary_data")
            binary_output = binary_output if choice is None else choice
    return InferRequest(texts=texts, id=request_id or "", truncate=fields.optional_bool(params, "truncate"),
                        binary_output=binary_output, retrieval=parse_retrieval_parameters(params))


def _rest_input(tensor: fields.JsonObject, binary: bytes, *, max_inputs: int) -> tuple[str, ...]:
    name = fields.required_str(tensor, "name")
    datatype = fields.required_str(tensor, "datatype")
    check_signature(name, datatype)  # before reading data typed for another signature
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(fields.is_int(d) for d in shape):
        raise InvalidInput("'shape' must be a list of integers", param="inputs")
    size = fields.optional_int(_object(tensor, "parameters"), "binary_data_size", minimum=0)
    data = tensor.get("data")
    if size is None and data is None:
        raise InvalidInput(f"Input '{name}' has neither 'data' nor parameters.binary_data_size",
                           param="inputs")
    if size is not None and data is not None:
        raise InvalidInput(f"Input '{name}' has both 'data' and parameters.binary_data_size",
                           param="inputs")
    if size is not None:
        if size != len(binary):
            raise InvalidInput(f"Input '{name}' declares {size} bytes of binary data, the request "
                               f"carries {len(binary)}", param="inputs")
        elements: list[bytes | str] = list(split_bytes_tensor(binary))
    else:
        if binary:
            raise InvalidInput("The request carries binary data no input declares", param="inputs")
        elements = _flat_strings(data, name)
    return texts_from_tensor(name, datatype, shape, elements, max_inputs=max_inputs)


def _flat_strings(data: object, name: str) -> list[bytes | str]:
    """``data`` flat or nested (row-major); BYTES elements are JSON strings."""
    out: list[bytes | str] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            out.append(item)
        else:
            raise InvalidInput(f"Input '{name}': {INPUT_DATATYPE} data must be strings", param="inputs")
    return out


def _object(body: fields.JsonObject, key: str) -> fields.JsonObject:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"'{key}' must be an object", param=key)
    return value


def rest_response(req: InferRequest, model_name: str, model_version: str,
                  embeddings: np.ndarray) -> tuple[dict[str, Any], bytes]:
    """(JSON header, binary tensor data). The binary part is empty unless ``req.binary_output``;
    then the header's length goes in ``Inference-Header-Content-Length``."""
    output: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": OUTPUT_DATATYPE,
                              "shape": list(embeddings.shape)}
    raw = b""
    if req.binary_output:
        raw = fp32_bytes(embeddings)
        output["parameters"] = {"binary_data_size": len(raw)}
    else:
        output["data"] = np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1)
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version,
                              "outputs": [output]}
    if req.id:
        header["id"] = req.id
    return header, raw


def fp32_bytes(embeddings: np.ndarray) -> bytes:
    """Row-major little-endian float32, as raw tensor contents are defined."""
    return np.ascontiguousarray(embeddings, dtype="<f4").tobytes()
