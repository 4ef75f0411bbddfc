"""A handler that records every request it accepts in a file, then takes ``seconds`` to answer."""

from __future__ import annotations

import asyncio
import os
from typing import Any


class Handler:
    def __init__(self, config: dict[str, Any]) -> None:
        self.record = config["record_file"]

    async def handle_post(self, payload: dict[str, Any]) -> dict[str, Any]:
        # O_APPEND writes of one short line are atomic, so concurrent requests never interleave.
        fd = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{payload['id']}\n".encode())
        finally:
            os.close(fd)
        await asyncio.sleep(payload.get("seconds", 0.05))
        return {"id": payload["id"]}
