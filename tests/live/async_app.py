"""A user container for the AsyncAPI live tests: ``python async_app.py PORT LOG``.

``POST /`` takes a JSON body ``{"sleep": s, "sleep_first": s, "status": code, "result": value}`` (all
optional) and, after sleeping (``sleep_first`` the first time it sees the request id), answers ``status`` (default 200) with ``result`` as JSON (default: what it saw).
It appends ``start <id>`` and ``done <id>`` lines (the ``X-Cortex-Request-ID``) to LOG, so a test can
tell when a request reached it and how often one was answered. ``GET /ready`` answers 200.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
SEEN: set[str] = set()


def note(path: str, line: str) -> None:
    with LOCK, open(path, "a") as out:
        out.write(line + "\n")


class App(BaseHTTPRequestHandler):
    log_path = ""

    def do_GET(self) -> None:  # noqa: N802
        self._answer(200, b'"ready"')

    def do_POST(self) -> None:  # noqa: N802
        request_id = self.headers.get("X-Cortex-Request-ID", "")
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        note(self.log_path, f"start {request_id}")
        try:
            spec = json.loads(body) if body.startswith(b"{") else {}
        except ValueError:
            spec = {}
        with LOCK:
            first = request_id not in SEEN
            SEEN.add(request_id)
        time.sleep(float(spec.get("sleep_first", spec.get("sleep", 0)) if first else spec.get("sleep", 0)))
        default = {"id": request_id, "bytes": len(body), "header": self.headers.get("X-Custom"),
                   "content_type": self.headers.get("Content-Type")}
        answer = spec["raw"].encode() if "raw" in spec else json.dumps(spec.get("result", default)).encode()
        try:
            self._answer(int(spec.get("status", 200)), answer)
        finally:
            note(self.log_path, f"done {request_id}")

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


if __name__ == "__main__":
    App.log_path = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), App)
    server.daemon_threads = True
    server.serve_forever()
