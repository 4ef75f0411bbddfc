"""Payload decoding by Content-Type, and results to responses by type."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from starlette.responses import PlainTextResponse

from cortex_iac.serving.codec import (
    RequestError,
    ResultError,
    decode_payload,
    encode_result,
)


@pytest.mark.parametrize(
    ("content_type", "body", "payload"),
    [
        ("application/json", b'{"a": [1, 2.5, null]}', {"a": [1, 2.5, None]}),
        ("Application/JSON; charset=utf-8", b'"x"', "x"),
        ("application/vnd.api+json", b"3", 3),
        ("text/plain", b'{"a": 1}', b'{"a": 1}'),
        ("", b"\x00\xff", b"\x00\xff"),
        ("image/png", b"", b""),
    ],
)
def test_decode(content_type: str, body: bytes, payload: Any) -> None:
    assert decode_payload(content_type, body) == payload


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body: Content-Type is application/json but there is no JSON"),
        (b"  \n", "empty body: Content-Type is application/json but there is no JSON"),
        (b'{"a": 1,}', "malformed JSON body: Expecting property name enclosed in double quotes: line 1 column 9 (char 8)"),
        (b"\xff", "malformed JSON body: not UTF-8 (invalid start byte at byte 0)"),
    ],
)
def test_decode_rejects_bad_json_with_400(body: bytes, message: str) -> None:
    with pytest.raises(RequestError) as error:
        decode_payload("application/json", body)
    assert (error.value.status, str(error.value)) == (400, message)


@pytest.mark.parametrize(
    ("result", "media_type", "body"),
    [
        ({"a": [1, 2.5, True, None]}, "application/json", b'{"a":[1,2.5,true,null]}'),
        ([], "application/json", b"[]"),
        (7, "application/json", b"7"),
        ({"name": "é"}, "application/json", '{"name":"é"}'.encode()),
        ({"label": np.int64(2), "scores": np.array([0.5, 0.25])}, "application/json", b'{"label":2,"scores":[0.5,0.25]}'),
        ("hi", "text/plain; charset=utf-8", b"hi"),
        (b"\x00", "application/octet-stream", b"\x00"),
        (bytearray(b"ab"), "application/octet-stream", b"ab"),
    ],
)
def test_encode(result: Any, media_type: str, body: bytes) -> None:
    response = encode_result(result)
    assert (response.status_code, response.headers["content-type"], response.body) == (200, media_type, body)


def test_encode_passes_responses_through() -> None:
    response = PlainTextResponse("teapot", status_code=418)
    assert encode_result(response) is response


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ({1, 2}, "Object of type set is not JSON serializable"),
        ({"x": float("inf")}, "Out of range float values are not JSON compliant"),
        (object(), "Object of type object is not JSON serializable"),
    ],
)
def test_encode_refuses_what_is_not_serialisable(result: Any, reason: str) -> None:
    with pytest.raises(ResultError) as error:
        encode_result(result)
    assert str(error.value).startswith(f"the handler's result cannot be serialised ({reason}")
