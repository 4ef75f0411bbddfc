"""A tiny HTTP/1.1 app standing in for one target API of a TrafficSplitter (or the KEDA interceptor).

Run as ``python split_apps.py PORT NAME [STATUS [DELAY [READY_AFTER]]]``; it listens on 127.0.0.1
only. Every request is answered ``STATUS`` (default 200) with the body ``NAME`` after ``DELAY``
seconds (default 0), and the headers ``x-app: NAME``, ``x-seen-host`` and ``x-seen-path`` (the Host
and path it received). ``READY_AFTER`` (default 0) seconds: the first request starts a "cold start"
of that long, and every request arriving before it ends is held until then, as the KEDA
interceptor holds requests while an API scales up from zero. ``GET /__split_stats`` answers at once with JSON ``{"served", "hosts", "paths",
"active"}`` (requests answered, how many per Host and per path, requests being processed now), so a
test can check what reached the app, copies from a router's mirror included.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time

STATS_PATH = "/__split_stats"
_served = 0
_active = 0
_hosts: collections.Counter[str] = collections.Counter()
_paths: collections.Counter[str] = collections.Counter()
_ready_at: float | None = None  # set by the first request


def _head(status: int, length: int, keep_alive: bool, extra: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "content-type: text/plain", f"content-length: {length}",
             f"connection: {'keep-alive' if keep_alive else 'close'}", *(f"{k}: {v}" for k, v in extra.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str, status: int,
                 delay: float, ready_after: float) -> None:
    global _served, _active, _ready_at
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            target = request_line.split()[1].decode()
            path = target.partition("?")[0]
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            await reader.readexactly(int(headers.get("content-length", "0")))
            keep_alive = headers.get("connection", "").lower() != "close"
            if path == STATS_PATH:
                body = json.dumps({"served": _served, "hosts": _hosts, "paths": _paths, "active": _active}).encode()
                writer.write(_head(200, len(body), keep_alive, {}) + body)
            else:
                _active += 1
                if _ready_at is None:
                    _ready_at = time.monotonic() + ready_after
                try:
                    wait = max(_ready_at - time.monotonic(), delay)
                    if wait > 0:
                        await asyncio.sleep(wait)
                finally:
                    _active -= 1
                host = headers.get("host", "")
                _served += 1
                _hosts[host] += 1
                if len(_paths) < 100:
                    _paths[path] += 1
                body = name.encode()
                writer.write(_head(status, len(body), keep_alive,
                                   {"x-app": name, "x-seen-host": host, "x-seen-path": path}) + body)
            await writer.drain()
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def _main(port: int, name: str, status: int, delay: float, ready_after: float) -> None:
    server = await asyncio.start_server(lambda r, w: _serve(r, w, name, status, delay, ready_after),
                                        "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(_main(int(args[0]), args[1], int(args[2]) if len(args) > 2 else 200,
                      float(args[3]) if len(args) > 3 else 0.0, float(args[4]) if len(args) > 4 else 0.0))
