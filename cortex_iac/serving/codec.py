"""Request bodies to handler payloads, handler results to HTTP responses."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from cortex_iac.errors import CortexError


class RequestError(CortexError):
    """The client sent something the runtime refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class ResultError(CortexError):
    """The handler returned something that cannot become an HTTP response."""


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def decode_payload(content_type: str, body: bytes) -> Any:
    """The handler's payload: parsed JSON for ``application/json`` (and ``*+json``), else the raw bytes.

    Raises ``RequestError`` (400) for an empty or malformed JSON body, naming the problem.
    """
    if not _is_json(content_type):
        return body
    if not body.strip():
        raise RequestError(400, "empty body: Content-Type is application/json but there is no JSON")
    try:
        return json.loads(body)
    except UnicodeDecodeError as error:
        raise RequestError(400, f"malformed JSON body: not UTF-8 ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, f"malformed JSON body: {error}") from None


def _numpy_friendly(value: Any) -> Any:
    # numpy arrays and scalars (what scikit-learn returns) know how to become plain Python values.
    to_list = getattr(value, "tolist", None)
    if callable(to_list):
        return to_list()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# allow_nan=False: NaN and Infinity are not JSON, and clients would choke on them.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_numpy_friendly)


def encode_result(result: Any) -> Response:
    """The response for a handler's return value.

    A Starlette ``Response`` is sent as is, ``str`` as text/plain, ``bytes`` as
    application/octet-stream, anything else as JSON (numpy values through ``tolist()``). Raises
    ``ResultError`` when the value is none of these.
    """
    if isinstance(result, Response):
        return result
    if isinstance(result, str):
        return Response(result, media_type="text/plain; charset=utf-8")
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(bytes(result), media_type="application/octet-stream")
    try:
        body = _ENCODER.encode(result)
    except (TypeError, ValueError, RecursionError) as error:
        raise ResultError(
            f"the handler's result cannot be serialised ({error}); return a dict, list, number, str, "
            "bytes or a starlette Response"
        ) from None
    return Response(body, media_type="application/json")
