"""A handler whose model takes far longer to load than any test waits."""

from __future__ import annotations

import time
from typing import Any


class Handler:
    def __init__(self, config: dict[str, Any]) -> None:
        time.sleep(60)

    def handle_post(self, payload: Any) -> Any:
        return payload
