"""A minimal ASGI app on uvicorn with a given keep-alive, standing in for a user's image server.

Run as ``python keepalive_app.py PORT KEEPALIVE_SECONDS`` (a float: uvicorn closes a connection
idle that long; its default is 5 s). Every request answers 200 ``ok`` at once; 127.0.0.1 only.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), timeout_keep_alive=float(sys.argv[2]),  # type: ignore[arg-type]
                log_level="warning", access_log=False)
