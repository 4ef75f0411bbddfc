"""A handler for the live tests of the serving runtime without a sidecar: every request sleeps
(asynchronously, so requests overlap) ``payload["seconds"]``, or the config's ``seconds`` when the
payload names none, then answers ``{"slept": seconds}``."""

from __future__ import annotations

import asyncio
from typing import Any


class Handler:
    def __init__(self, config: dict[str, Any]) -> None:
        self.seconds = float(config.get("seconds", 1.0))

    async def handle_post(self, payload: Any) -> dict[str, float]:
        seconds = float(payload.get("seconds", self.seconds)) if isinstance(payload, dict) else self.seconds
        await asyncio.sleep(seconds)
        return {"slept": seconds}
