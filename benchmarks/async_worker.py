"""AsyncAPI queue-worker benchmark against a local moto server.

1. Overhead per message: N requests are queued (as the gateway stores them), then one worker with a
   container that answers at once (tests/live/async_app.py) processes them; time per message =
   elapsed / N, at max_concurrency 1 and 8. Every AWS request is counted in the moto server's request
   log (S3 by method, SQS = POST /), so the calls per message are measured, not assumed.
2. Idle cost: a worker with the deployed settings (20 s long polls, the DLQ polled every 60 s) and an
   empty queue for --idle-seconds; the SQS requests moto received, per hour, next to the computed
   3600/20 + 3600/(60 + 1).

Usage: python benchmarks/async_worker.py --messages 200 --idle-seconds 180 --json /tmp/async-worker.json
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cortex_iac.queue import contract  # noqa: E402
from cortex_iac.queue.contract import WorkerConfig  # noqa: E402
from cortex_iac.queue.provision import create_resources  # noqa: E402
from tests.live.moto_server import MotoServer  # noqa: E402
from tests.live.procs import free_port, port_open  # noqa: E402

APP = REPO / "tests" / "live" / "async_app.py"
# Werkzeug's request lines; those of non-2xx/204 answers are wrapped in ANSI colour codes.
_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|POST|DELETE|HEAD) (\S+) HTTP')


def moto_requests(log: Path, start: int) -> collections.Counter[str]:
    """Requests in moto's log after byte ``start``: 'SQS' for POST / (the JSON protocol), 'S3 <METHOD>'."""
    counts: collections.Counter[str] = collections.Counter()
    with log.open("rb") as f:
        f.seek(start)
        for line in f.read().decode(errors="replace").splitlines():
            match = _LINE.search(line)
            if match:
                method, path = match.groups()
                counts["SQS" if method == "POST" and path == "/" else f"S3 {method}"] += 1
    return counts


def wait_port(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"process {proc.args} did not listen on {port}")
        time.sleep(0.05)


def metric(admin: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def start_worker(moto: MotoServer, res: Any, app_port: int, tmp: Path, **settings: Any) -> tuple[subprocess.Popen[bytes], int]:
    admin = free_port()
    config = WorkerConfig(api_name="bench", queue_url=res.queue_url, bucket=res.bucket,
                          dead_letter_queue_url=res.dead_letter_queue_url, user_port=app_port, admin_port=admin,
                          log_level="warning", **settings)
    proc = subprocess.Popen([sys.executable, "-m", "cortex_iac.queue.worker"],
                            env={**os.environ, **moto.env(), **config.to_env()},
                            stdout=(tmp / "worker.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_port(proc, admin)
    return proc, admin


def enqueue(moto: MotoServer, res: Any, n: int) -> None:
    s3, sqs = moto.client("s3"), moto.client("sqs")
    prefix = contract.default_key_prefix("bench")
    for _ in range(n):
        rid = str(uuid.uuid4())
        s3.put_object(Bucket=res.bucket, Key=contract.payload_key(prefix, rid), Body=b"{}")
        s3.put_object(Bucket=res.bucket, Key=contract.headers_key(prefix, rid),
                      Body=b'[["content-type","application/json"]]')
        s3.put_object(Bucket=res.bucket, Key=contract.status_key(prefix, rid, "in_queue"), Body=b"")
        sqs.send_message(QueueUrl=res.queue_url, MessageBody=rid)


def per_message(moto: MotoServer, res: Any, app_port: int, tmp: Path, n: int, concurrency: int) -> dict[str, Any]:
    enqueue(moto, res, n)
    start = moto.log.stat().st_size
    began = time.monotonic()
    proc, admin = start_worker(moto, res, app_port, tmp, max_concurrency=concurrency, receive_wait=1)
    try:
        deadline = time.monotonic() + 600
        while metric(admin, 'cortex_async_worker_requests_total{api_name="bench",outcome="completed"}') < n:
            if time.monotonic() > deadline:
                raise RuntimeError("worker did not finish")
            time.sleep(0.05)
        elapsed = time.monotonic() - began
    finally:
        proc.terminate()
        proc.wait(30)
    counts = moto_requests(moto.log, start)
    return {"messages": n, "max_concurrency": concurrency, "seconds": round(elapsed, 2),
            "ms_per_message": round(elapsed / n * 1000, 1), "messages_per_second": round(n / elapsed, 1),
            "aws_requests_per_message": {k: round(v / n, 2) for k, v in sorted(counts.items())}}


def direct_post_ms(app_port: int, n: int = 200) -> float:
    started = time.perf_counter()
    for _ in range(n):
        request = urllib.request.Request(f"http://127.0.0.1:{app_port}/", data=b"{}", method="POST",
                                         headers={"X-Cortex-Request-ID": "x"})
        urllib.request.urlopen(request, timeout=5).read()
    return round((time.perf_counter() - started) / n * 1000, 2)


def idle(moto: MotoServer, res: Any, app_port: int, tmp: Path, seconds: int) -> dict[str, Any]:
    proc, admin = start_worker(moto, res, app_port, tmp)  # the deployed long-poll settings
    try:
        time.sleep(3)  # past start-up
        start = moto.log.stat().st_size
        worker_before = metric(admin, "cortex_async_worker_sqs_requests_total")
        time.sleep(seconds)
        counts = moto_requests(moto.log, start)
        worker_count = metric(admin, "cortex_async_worker_sqs_requests_total") - worker_before
    finally:
        proc.terminate()
        proc.wait(40)
    computed = 3600 / contract.RECEIVE_WAIT_SECONDS + 3600 / (contract.DLQ_POLL_INTERVAL_SECONDS + 1)
    return {"seconds": seconds, "sqs_requests_seen_by_moto": counts["SQS"], "s3_requests": sum(
        v for k, v in counts.items() if k.startswith("S3")), "worker_counted": worker_count,
        "per_hour_measured": round(counts["SQS"] * 3600 / seconds), "per_hour_computed": round(computed)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--idle-seconds", type=int, default=180)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="async-worker-bench-"))
    moto = MotoServer(tmp / "moto.log")
    moto.start()
    app_port = free_port()
    app = subprocess.Popen([sys.executable, str(APP), str(app_port), str(tmp / "calls.log")], start_new_session=True)
    report: dict[str, Any] = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                              "machine": f"{os.cpu_count()} CPUs, {platform.platform()}"}
    try:
        wait_port(app, app_port)
        res = create_resources(moto.client("sqs"), moto.client("s3"), "bench", bucket="bench-bucket",
                               visibility_timeout=60, max_attempts=3)
        report["container_post_ms"] = direct_post_ms(app_port)
        report["per_message"] = [per_message(moto, res, app_port, tmp, args.messages, c) for c in (1, 8)]
        print(json.dumps(report["per_message"]), flush=True)
        report["idle"] = idle(moto, res, app_port, tmp, args.idle_seconds)
        print(json.dumps(report["idle"]), flush=True)
    finally:
        app.terminate()
        app.wait(10)
        moto.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
