"""Benchmark the job gateway's enqueue: a 100,000-item item_list, batches per second, next to raw boto3
SendMessageBatch calls against the same local moto server, and the gateway's memory while it enqueues.

Starts a moto server and a stub Kubernetes API server (it only answers the gateway's Job and
ConfigMap creations) on 127.0.0.1, runs the real gateway (``python -m cortex_iac.jobs.gateway``),
submits the item list, and polls GET until the job is ``running`` (every batch sent). The gateway's
resident memory is read from /proc (VmRSS before, VmHWM = peak after).

Usage: python benchmarks/jobs_enqueue.py [--items 100000] [--batch-size 10] [--threads 8]
Prints a Markdown table; paste it into docs/benchmarks.md with the command, machine and date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cortex_iac.jobs.contract import GatewayConfig, WorkerConfig  # noqa: E402
from tests.jobs.templates import batch_template  # noqa: E402
from tests.live.jobs_harness import process  # noqa: E402
from tests.live.jobs_moto import REGION, create_job_table, moto_server  # noqa: E402
from tests.live.procs import free_port, port_open  # noqa: E402


def stub_kube(port: int) -> uvicorn.Server:
    async def created(request: Request) -> JSONResponse:
        obj = await request.json()
        obj["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
        return JSONResponse(obj, status_code=201)

    async def job(request: Request) -> JSONResponse:
        return JSONResponse({"metadata": {}, "status": {}})

    app = Starlette(routes=[
        Route("/apis/batch/v1/namespaces/{ns}/jobs", created, methods=["POST"]),
        Route("/apis/batch/v1/namespaces/{ns}/jobs/{name}", job, methods=["GET"]),
        Route("/api/v1/namespaces/{ns}/configmaps", created, methods=["POST"]),
        Route("/api/v1/namespaces/{ns}/pods", lambda r: JSONResponse({"items": []}), methods=["GET"]),
    ])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not port_open(port):
        time.sleep(0.05)
    return server


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def raw_boto3(client: object, url: str, items: list[int], batch_size: int, threads: int) -> float:
    """Seconds to send the same batches with plain SendMessageBatch calls (10 entries each)."""
    bodies = [json.dumps(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    calls = [[{"Id": str(j), "MessageBody": b, "MessageGroupId": str(i + j), "MessageDeduplicationId": str(i + j)}
              for j, b in enumerate(bodies[i:i + 10])] for i in range(0, len(bodies), 10)]
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda entries: client.send_message_batch(QueueUrl=url, Entries=entries), calls))  # type: ignore[attr-defined]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    items = list(range(args.items))
    batches = -(-args.items // args.batch_size)
    with tempfile.TemporaryDirectory() as tmp_dir, moto_server(Path(tmp_dir)) as moto:
        tmp = Path(tmp_dir)
        sqs = moto.client("sqs")
        rows = []
        for threads in (1, args.threads):
            url = sqs.create_queue(QueueName=f"raw-{threads}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
            seconds = raw_boto3(sqs, url, items, args.batch_size, threads)
            rows.append((f"raw boto3 SendMessageBatch, {threads} thread(s)", seconds, None, None))
        create_job_table(moto, "bench-jobs")
        kube_port = free_port()
        kube = stub_kube(kube_port)
        worker = WorkerConfig(api_name="bench", job_id="x", sqs_url="x", table="bench-jobs", aws_region=REGION)
        template_path = tmp / "template.json"
        template_path.write_text(json.dumps(batch_template("bench", ["app"], worker=worker)))
        port = free_port()
        config = GatewayConfig(kind="BatchAPI", api_name="bench", cluster_name="bench", endpoint="/bench",
                               namespace="cortex-job-sum", table="bench-jobs", aws_region=REGION,
                               aws_endpoint_url=moto.url, job_template=str(template_path),
                               kube_api_url=f"http://127.0.0.1:{kube_port}", kube_token_file="", kube_ca_file="",
                               host="127.0.0.1", port=port, enqueue_threads=args.threads)
        env = {"PATH": os.environ["PATH"], **moto.env(), **config.to_env()}
        with process([sys.executable, "-m", "cortex_iac.jobs.gateway"], env=env, port=port,
                     log=tmp / "gateway.log") as gateway, httpx.Client(timeout=120) as http:
            before = proc_kib(gateway.pid, "VmRSS")
            body = {"workers": 1, "item_list": {"items": items, "batch_size": args.batch_size}}
            start = time.perf_counter()
            response = http.post(f"http://127.0.0.1:{port}/bench", json=body)
            assert response.status_code == 200, response.text
            accepted = time.perf_counter() - start
            job_id = response.json()["job_id"]
            while True:
                status = http.get(f"http://127.0.0.1:{port}/bench", params={"jobID": job_id}).json()["job_status"]
                if status["status"] != "enqueuing" and status["status"] != "pending":
                    break
                time.sleep(0.05)
            seconds = time.perf_counter() - start
            assert status["status"] == "running" and status["total_batch_count"] == batches, status
            peak = proc_kib(gateway.pid, "VmHWM")
            rows.append((f"job gateway (POST to running), {args.threads} threads", seconds, before, peak))
        kube.should_exit = True
    body_mib = len(json.dumps(body)) / 2**20
    print(f"{args.items:,} items in batches of {args.batch_size} = {batches:,} messages; body {body_mib:.2f} MiB; "
          f"POST answered after {accepted:.2f} s")
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| sender | seconds | batches/s | gateway RSS before | gateway peak RSS |")
    print("|---|---|---|---|---|")
    for name, secs, rss0, rss1 in rows:
        mem = (f"{rss0 / 1024:.0f} MiB", f"{rss1 / 1024:.0f} MiB") if rss0 is not None and rss1 is not None else ("", "")
        print(f"| {name} | {secs:.1f} | {batches / secs:,.0f} | {mem[0]} | {mem[1]} |")


if __name__ == "__main__":
    main()
