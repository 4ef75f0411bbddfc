"""A handler whose model cannot load."""

from __future__ import annotations

from typing import Any


class Handler:
    def __init__(self, config: dict[str, Any]) -> None:
        raise FileNotFoundError("model.pkl is missing")

    def handle_post(self, payload: Any) -> Any:
        return payload
