"""A batching handler: a fixed cost per call, returns each payload tagged with the size of its batch."""

from __future__ import annotations

import time
from typing import Any


class Handler:
    def __init__(self, config: dict[str, Any]) -> None:
        self.cost = config.get("cost_seconds", 0.005)

    def handle_post(self, payloads: list[Any]) -> list[Any]:
        time.sleep(self.cost)
        if any(p == {"do": "short"} for p in payloads):
            return payloads[1:]
        return [{"echo": payload, "batch_size": len(payloads)} for payload in payloads]
