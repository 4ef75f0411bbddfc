"""Benchmark the batch worker's per-batch overhead against a local moto server.

One worker process (``python -m cortex_iac.jobs.worker``) drains N one-item batches into an app that
answers at once (tests/live/jobs_apps.py); the time per batch is measured between the app's first
and last request. Next to it, a bare consumer in this process does only what any SQS worker must
(ReceiveMessage, POST, DeleteMessage) on the same server. The difference is what the worker adds
per batch: the status and ledger read (BatchGetItem) and the counted outcome (TransactWriteItems).

Usage: python benchmarks/jobs_worker.py [--batches 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cortex_iac.jobs.contract import Attr, WorkerConfig  # noqa: E402
from cortex_iac.jobs.enqueue import enqueue  # noqa: E402
from cortex_iac.jobs.store import JobStore  # noqa: E402
from tests.live.jobs_harness import process  # noqa: E402
from tests.live.jobs_moto import REGION, create_job_table, moto_server  # noqa: E402
from tests.live.procs import free_port  # noqa: E402

APPS = REPO / "tests" / "live" / "jobs_apps.py"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    n = args.batches
    bodies = [json.dumps([i]) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp_dir, moto_server(Path(tmp_dir)) as moto:
        tmp = Path(tmp_dir)
        sqs, db = moto.client("sqs"), moto.client("dynamodb")
        create_job_table(moto, "bench-jobs")
        record = tmp / "requests.jsonl"
        record.touch()
        app_port = free_port()
        app_env = {"PATH": os.environ["PATH"]}
        with process([sys.executable, str(APPS), "batch", str(app_port), str(record)], env=app_env, port=app_port,
                     log=tmp / "app.log"):
            # The bare consumer.
            bare_url = sqs.create_queue(QueueName="bare.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
            enqueue(sqs, bare_url, bodies, threads=4, keep_going=lambda sent: None)
            with httpx.Client(base_url=f"http://127.0.0.1:{app_port}") as http:
                start = time.perf_counter()
                for _ in range(n):
                    message = sqs.receive_message(QueueUrl=bare_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)["Messages"][0]
                    http.post("/", content=message["Body"], headers={"X-Cortex-Job-ID": "bare"})
                    sqs.delete_message(QueueUrl=bare_url, ReceiptHandle=message["ReceiptHandle"])
                bare = (time.perf_counter() - start) / n
            # The worker.
            url = sqs.create_queue(QueueName="job.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "30"})[
                "QueueUrl"]
            store = JobStore(db, "bench-jobs", 3600)
            store.create("job1", {Attr.STATUS: "running", Attr.TOTAL_BATCH_COUNT: n, Attr.SUCCEEDED: 0, Attr.FAILED: 0,
                                  Attr.TIME_SUM_MS: 0})
            enqueue(sqs, url, bodies, threads=4, keep_going=lambda sent: None)
            config = WorkerConfig(api_name="bench", job_id="job1", sqs_url=url, table="bench-jobs", aws_region=REGION,
                                  aws_endpoint_url=moto.url, app_port=app_port, poll_wait=1, empty_check_interval=1.0)
            env = {"PATH": os.environ["PATH"], **moto.env(), **config.to_env()}
            subprocess.run([sys.executable, "-m", "cortex_iac.jobs.worker"], env=env, check=True, timeout=600,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times = [r["t"] for r in map(json.loads, record.read_text().splitlines())
                     if r["job_id"] == "job1" and r["path"] == "/"]
            assert len(times) == n, len(times)
            worker = (max(times) - min(times)) / (n - 1)
            final = store.get("job1")
            assert final is not None and final[Attr.SUCCEEDED] == n and final[Attr.STATUS] == "succeeded", final
    print(f"{n} one-item batches, app answering at once; {platform.node()}: {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| consumer | ms per batch |")
    print("|---|---|")
    print(f"| bare: ReceiveMessage + POST + DeleteMessage | {bare * 1000:.1f} |")
    print(f"| cortex worker (+ BatchGetItem status/ledger, TransactWriteItems count) | {worker * 1000:.1f} |")
    print(f"| overhead per batch | {(worker - bare) * 1000:.1f} |")


if __name__ == "__main__":
    main()
