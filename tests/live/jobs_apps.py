"""Apps the job APIs' live tests run as the user's container (stdlib only, quick to start).

``batch PORT RECORD [--fail-every N] [--sleep S]``: a BatchAPI container. Each batch (a JSON array of
numbers) is answered 200 with its sum, or 500 for one batch in N (``--fail-every``); every
request is appended to RECORD as one JSON line {path, job_id, body}.
``task SPEC OUT``: a TaskAPI command: reads the job spec, writes it to OUT, then sleeps
``config["sleep"]`` seconds and exits with ``config["exit"]`` (defaults 0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def batch(args: argparse.Namespace) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            line = json.dumps({"path": self.path, "job_id": self.headers.get("X-Cortex-Job-ID"),
                               "body": json.loads(body), "pid": os.getpid(), "t": time.time()})
            with open(args.record, "a") as out:
                out.write(line + "\n")
            if self.path == "/on-job-complete":
                self._answer(200, b"{}")
                return
            items = json.loads(body)
            time.sleep(args.sleep)
            # --fail-every N: the batches whose first item is a multiple of N * len(batch) fail, i.e.
            # with full batches one batch in N, always the same ones.
            if args.fail_every and isinstance(items[0], int) and items[0] % (args.fail_every * args.batch_size) == 0:
                self._answer(500, b'{"error": "this batch always fails"}')
                return
            self._answer(200, json.dumps({"sum": sum(i for i in items if isinstance(i, int))}).encode())

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


def task(args: argparse.Namespace) -> None:
    with open(args.spec) as f:
        spec = json.load(f)
    with open(args.out, "a") as out:
        out.write(json.dumps(spec) + "\n")
    time.sleep(spec["config"].get("sleep", 0))
    sys.exit(spec["config"].get("exit", 0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("batch")
    b.add_argument("port", type=int)
    b.add_argument("record")
    b.add_argument("--fail-every", type=int, default=0)
    b.add_argument("--batch-size", type=int, default=1)
    b.add_argument("--sleep", type=float, default=0.0)
    t = sub.add_parser("task")
    t.add_argument("spec")
    t.add_argument("out")
    parsed = parser.parse_args()
    batch(parsed) if parsed.mode == "batch" else task(parsed)
