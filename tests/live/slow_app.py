"""A tiny HTTP/1.1 app standing in for a model container: every request takes ``DELAY`` seconds.

Run as ``python slow_app.py PORT DELAY``; it listens on 127.0.0.1 only. A request's query
``?sleep=SECONDS`` overrides the delay for that request; ``?drop=1`` makes the app read the request
and close the connection without answering; ``?status=CODE`` answers with that status;
``?stream=N`` answers with N chunks (chunked encoding), ``sleep`` seconds apart. ``GET /__stats`` answers at once with JSON
``{"active", "max_active", "served", "dropped"}`` (requests being processed now, the most ever
processed at once, requests finished, requests read and dropped), so a test can check what actually
reached the app.
"""

from __future__ import annotations

import asyncio
import json
import sys

_stats = {"active": 0, "max_active": 0, "served": 0, "dropped": 0}


async def _stream(writer: asyncio.StreamWriter, chunks: int, gap: float) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    for index in range(chunks):
        data = f"data: {index}\n\n".encode()
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()
        if index < chunks - 1:
            await asyncio.sleep(gap)
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def _respond(writer: asyncio.StreamWriter, body: bytes, keep_alive: bool, status: int = 200) -> None:
    head = (f"HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {len(body)}\r\n"
            f"connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    writer.write(head.encode() + body)
    await writer.drain()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            path, _, query = request_line.split()[1].decode().partition("?")
            params = dict(p.partition("=")[::2] for p in query.split("&") if p)
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip().lower()
            await reader.readexactly(int(headers.get("content-length", "0")))
            keep_alive = headers.get("connection") != "close"
            if path == "/__stats":
                await _respond(writer, json.dumps(_stats).encode(), keep_alive)
            elif params.get("stream"):
                await _stream(writer, int(params["stream"]), float(params.get("sleep", delay)))
            elif params.get("drop"):
                _stats["dropped"] += 1
                return
            else:
                _stats["active"] += 1
                _stats["max_active"] = max(_stats["max_active"], _stats["active"])
                try:
                    await asyncio.sleep(float(params.get("sleep", delay)))
                finally:
                    _stats["active"] -= 1
                _stats["served"] += 1
                await _respond(writer, b"ok", keep_alive, int(params.get("status", 200)))
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def _main(port: int, delay: float) -> None:
    server = await asyncio.start_server(lambda r, w: _serve(r, w, delay), "127.0.0.1", port,
                                        backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]), float(sys.argv[2])))
