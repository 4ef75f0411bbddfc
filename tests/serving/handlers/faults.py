"""A handler whose behaviour is chosen by the payload, to exercise every error path of the runtime."""

from __future__ import annotations

import math
import time
from typing import Any


class Handler:
    def __init__(self, config: dict[str, Any]) -> None:
        self.greeting = config.get("greeting", "hello")

    def handle_post(self, payload: Any) -> Any:
        if isinstance(payload, bytes):
            return {"type": "bytes", "length": len(payload)}
        if payload == {"do": "raise"}:
            raise RuntimeError("the model exploded (secret detail)")
        if payload == {"do": "unserialisable"}:
            return {"a set": {1, 2}}
        if payload == {"do": "nan"}:
            return {"value": math.nan}
        if isinstance(payload, dict) and payload.get("do") == "sleep":
            time.sleep(payload["seconds"])
            return {"slept": payload["seconds"]}
        if payload == {"do": "text"}:
            return "plain text"
        if payload == {"do": "bytes"}:
            return b"\x00\x01"
        return {"type": type(payload).__name__, "echo": payload}

    def handle_get(self) -> str:
        return self.greeting
