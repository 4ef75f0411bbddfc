"""The handler of the live tests of a pod without the sidecar (the runtime admits requests itself).

``handle_post`` sleeps ``config["delay"]`` seconds (or a JSON payload's ``sleep``), raises for
``{"do": "raise"}``, and counts its calls: ``handle_get`` answers ``{"served", "active", "max_active"}``
at once, so a test can check what actually reached the handler.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class Handler:
    def __init__(self, config: dict[str, Any]) -> None:
        self.delay = float(config.get("delay", 0.0))
        self.get_delay = float(config.get("get_delay", 0.0))
        self.lock = threading.Lock()
        self.stats = {"served": 0, "active": 0, "max_active": 0}

    def handle_post(self, payload: Any) -> Any:
        with self.lock:
            self.stats["active"] += 1
            self.stats["max_active"] = max(self.stats["max_active"], self.stats["active"])
        try:
            if payload == {"do": "raise"}:
                raise RuntimeError("the model failed")
            delay = payload.get("sleep", self.delay) if isinstance(payload, dict) else self.delay
            time.sleep(delay)
            return {"slept": delay}
        finally:
            with self.lock:
                self.stats["active"] -= 1
                self.stats["served"] += 1

    def handle_get(self) -> Any:
        time.sleep(self.get_delay)
        with self.lock:
            return dict(self.stats)
