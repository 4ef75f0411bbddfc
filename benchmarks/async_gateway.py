"""AsyncAPI gateway benchmark against a local moto server (SQS and S3 over HTTP on loopback).

1. Submit throughput and p99 at 1, 16 and 64 connections: wrk POSTing a 1 KiB JSON body to the
   gateway, next to the same AWS calls made directly with boto3 by as many threads (put payload, then
   headers.json and the in_queue marker at once, then SendMessage: what the gateway does per submit).
   The ratio gateway/direct is the gateway's overhead.
2. The gateway's RSS while a 100 MB (and a 300 MB) body streams through it (sampled every 20 ms
   from /proc): bounded if the growth does not follow the body's size.

Usage (repository root, project venv; wrk from `apt-get install -y wrk`):
  python benchmarks/async_gateway.py --duration 10 --repeat 2 --json /tmp/async-gateway.json
The moto server is the backend of both sides, so what is compared is the gateway's cost on top of the
calls; absolute numbers are moto's more than AWS's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from botocore.config import Config  # noqa: E402

from cortex_iac.queue import contract  # noqa: E402
from cortex_iac.queue.contract import GatewayConfig  # noqa: E402
from cortex_iac.queue.provision import create_resources  # noqa: E402
from tests.live.moto_server import MotoServer  # noqa: E402
from tests.live.procs import free_port, port_open  # noqa: E402

BODY = json.dumps({"text": "x" * 1000}).encode()
CONNECTIONS = (1, 16, 64)


def start_gateway(moto: MotoServer, res: Any, tmp: Path, **settings: Any) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = GatewayConfig(api_name="bench", queue_url=res.queue_url, bucket=res.bucket, host="127.0.0.1",
                           port=port, metrics_port=free_port(), log_level="warning", **settings)
    proc = subprocess.Popen([sys.executable, "-m", "cortex_iac.queue.gateway"],
                            env={**os.environ, **moto.env(), **config.to_env()},
                            stdout=(tmp / "gateway.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((tmp / "gateway.log").read_text()[-2000:])
        time.sleep(0.05)
    return proc, port


def run_wrk(port: int, connections: int, duration: int, tmp: Path) -> dict[str, float]:
    script = tmp / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = {json.dumps(BODY.decode())}\n"
                      'done = function(summary, latency, requests)\n'
                      '  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,'
                      ' latency:percentile(50), latency:percentile(99), summary.errors.status +'
                      ' summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))\n'
                      'end\n')
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "-s", str(script),
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    assert match, out
    requests, micros, p50, p99, errors = (int(x) for x in match.groups())
    return {"rps": requests / (micros / 1e6), "p50_ms": p50 / 1000, "p99_ms": p99 / 1000, "errors": errors}


def run_direct(moto: MotoServer, res: Any, connections: int, duration: int) -> dict[str, float]:
    import boto3

    session = boto3.session.Session()
    config = Config(max_pool_connections=64, retries={"mode": "standard", "total_max_attempts": 2},
                    request_checksum_calculation="when_required", response_checksum_validation="when_required")
    kwargs = {"endpoint_url": moto.endpoint, "region_name": "us-east-1", "aws_access_key_id": "testing",
              "aws_secret_access_key": "testing", "config": config}
    s3, sqs = session.client("s3", **kwargs), session.client("sqs", **kwargs)
    prefix = "workloads/direct/"
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + duration
    pair = ThreadPoolExecutor(2 * connections)

    def one() -> None:
        import uuid

        rid = str(uuid.uuid4())
        s3.put_object(Bucket=res.bucket, Key=contract.payload_key(prefix, rid), Body=BODY,
                      ContentType="application/octet-stream")
        a = pair.submit(s3.put_object, Bucket=res.bucket, Key=contract.headers_key(prefix, rid),
                        Body=b'[["content-type","application/json"]]', ContentType="application/json")
        b = pair.submit(s3.put_object, Bucket=res.bucket, Key=contract.status_key(prefix, rid, "in_queue"),
                        Body=b"", ContentType="text/plain")
        a.result()
        b.result()
        sqs.send_message(QueueUrl=res.queue_url, MessageBody=rid)

    def loop() -> None:
        mine = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            one()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=loop) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    pair.shutdown()
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000, "errors": 0}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def upload_rss(moto: MotoServer, res: Any, tmp: Path, size: int) -> dict[str, Any]:
    import httpx

    proc, port = start_gateway(moto, res, tmp, max_body_bytes=2 * size)
    try:
        httpx.post(f"http://127.0.0.1:{port}/", content=b"{}").raise_for_status()  # warm
        baseline = rss_kib(proc.pid)
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(rss_kib(proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        chunk = os.urandom(1024 * 1024)

        def body() -> Any:
            for _ in range(size // len(chunk)):
                yield chunk

        started = time.monotonic()
        response = httpx.post(f"http://127.0.0.1:{port}/", content=body(), timeout=300)
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        response.raise_for_status()
        key = contract.payload_key(contract.default_key_prefix("bench"), response.json()["id"])
        stored = moto.client("s3").head_object(Bucket=res.bucket, Key=key)["ContentLength"]
        return {"body_bytes": size, "stored_bytes": stored, "seconds": round(elapsed, 2),
                "rss_before_mib": round(baseline / 1024, 1), "rss_peak_mib": round(max(samples) / 1024, 1),
                "rss_growth_mib": round((max(samples) - baseline) / 1024, 1), "samples": len(samples)}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--upload-mb", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="async-bench-"))
    moto = MotoServer(tmp / "moto.log")
    moto.start()
    report: dict[str, Any] = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                              "machine": f"{os.cpu_count()} CPUs, {platform.platform()}", "submit": {}}
    try:
        res = create_resources(moto.client("sqs"), moto.client("s3"), "bench", bucket="bench-bucket",
                               visibility_timeout=60, max_attempts=3)
        proc, port = start_gateway(moto, res, tmp)
        try:
            run_wrk(port, 4, 2, tmp)  # warm-up
            run_direct(moto, res, 4, 2)
            for connections in CONNECTIONS:
                rounds: dict[str, list[dict[str, float]]] = {"gateway": [], "direct": []}
                for round_ in range(args.repeat):
                    # Alternate which side goes first: moto slows down as it accumulates objects.
                    sides = ["gateway", "direct"] if round_ % 2 == 0 else ["direct", "gateway"]
                    for side in sides:
                        rounds[side].append(run_wrk(port, connections, args.duration, tmp) if side == "gateway"
                                            else run_direct(moto, res, connections, args.duration))
                row = {side: {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}
                       for side, runs in rounds.items()}
                row["ratio"] = round(row["gateway"]["rps"] / row["direct"]["rps"], 2)
                report["submit"][connections] = row
                print(connections, json.dumps(row), flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
        report["upload"] = []
        for megabytes in args.upload_mb:
            moto.stop()
            moto.start()  # an empty server each time: moto holds every upload in its own memory
            res = create_resources(moto.client("sqs"), moto.client("s3"), "bench", bucket="bench-bucket",
                                   visibility_timeout=60, max_attempts=3)
            report["upload"].append(upload_rss(moto, res, tmp, megabytes * 1024 * 1024))
            print("upload", json.dumps(report["upload"][-1]), flush=True)
    finally:
        moto.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
