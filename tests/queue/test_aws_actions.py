"""The AWS calls the gateway and the worker really make are exactly what the contract lists for their
IAM policies (least privilege by construction), on their own queue and prefix only.

Both run in-process against moto's in-process mock, with every boto3 call recorded through botocore's
``before-parameter-build`` event (the call's own parameters); the worker posts to the real test container (tests/live/async_app.py).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from moto import mock_aws

from cortex_iac.queue import contract
from cortex_iac.queue.contract import GatewayConfig, WorkerConfig
from cortex_iac.queue.gateway import Gateway
from cortex_iac.queue.provision import create_resources
from cortex_iac.queue.storage import s3_client, sqs_client
from cortex_iac.queue.worker import Worker
from tests.live.procs import free_port, port_open

APP = Path(__file__).parents[1] / "live" / "async_app.py"

# botocore operation -> the IAM action that authorises it.
_ACTION = {
    "PutObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject", "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "GetObject": "s3:GetObject", "DeleteObject": "s3:DeleteObject", "ListObjectsV2": "s3:ListBucket",
    "SendMessage": "sqs:SendMessage", "ReceiveMessage": "sqs:ReceiveMessage", "DeleteMessage": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def attach(self, client: Any) -> Any:
        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            self.calls.append((model.name, params))

        client.meta.events.register("before-parameter-build.*.*", record)
        return client

    def actions(self, service: str) -> set[str]:
        return {_ACTION[name] for name, _ in self.calls if _ACTION.get(name, "").startswith(service + ":")}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def _wait(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_each_process_calls_only_the_actions_its_policy_grants(aws: None, tmp_path: Path) -> None:
    res = create_resources(s3=s3_client(4), sqs=sqs_client(4), api_name="least", bucket="least-bucket",
                           visibility_timeout=30, max_attempts=3)
    prefix = "apis/least/"
    gateway_calls, worker_calls = Recorder(), Recorder()
    gateway = Gateway(GatewayConfig(api_name="least", queue_url=res.queue_url, bucket=res.bucket, key_prefix=prefix,
                                    max_body_bytes=20 * 1024 * 1024),
                      s3=gateway_calls.attach(s3_client(8)), sqs=gateway_calls.attach(sqs_client(8)))
    app_port = free_port()
    app = subprocess.Popen([sys.executable, str(APP), str(app_port), str(tmp_path / "calls.log")])
    shutdown = threading.Event()
    try:
        _wait(lambda: port_open(app_port))
        worker = Worker(WorkerConfig(api_name="least", queue_url=res.queue_url, bucket=res.bucket, key_prefix=prefix,
                                     dead_letter_queue_url=res.dead_letter_queue_url, user_port=app_port,
                                     admin_port=free_port(), visibility_timeout=3, receive_wait=1,
                                     dead_letter_poll_interval=0.2, grace_period=5),
                        s3=worker_calls.attach(s3_client(8)), sqs=worker_calls.attach(sqs_client(8)))
        runner = threading.Thread(target=worker.run, args=(shutdown,))
        runner.start()
        anyio.run(_drive, gateway, res.dead_letter_queue_url)
    finally:
        shutdown.set()
        app.terminate()
        app.wait(10)
    runner.join(20)
    assert gateway_calls.actions("s3") == set(contract.GATEWAY_S3_ACTIONS + contract.GATEWAY_S3_BUCKET_ACTIONS)
    assert gateway_calls.actions("sqs") == set(contract.GATEWAY_SQS_ACTIONS)
    assert worker_calls.actions("s3") == set(contract.WORKER_S3_ACTIONS + contract.WORKER_S3_BUCKET_ACTIONS)
    assert worker_calls.actions("sqs") == set(contract.WORKER_SQS_ACTIONS)
    unknown = {name for name, _ in gateway_calls.calls + worker_calls.calls} - set(_ACTION)
    assert unknown == set()
    # Only the API's own prefix, bucket and queues.
    for name, params in gateway_calls.calls + worker_calls.calls:
        if "Bucket" in params:
            assert params["Bucket"] == res.bucket
            assert params.get("Key", params.get("Prefix", "")).startswith(prefix), (name, params)
        assert params.get("QueueUrl", res.queue_url) in (res.queue_url, res.dead_letter_queue_url), (name, params)
    dlq_actions = {_ACTION[name] for name, params in worker_calls.calls
                   if params.get("QueueUrl") == res.dead_letter_queue_url}
    assert dlq_actions == set(contract.WORKER_DLQ_SQS_ACTIONS)
    assert all(params.get("QueueUrl") != res.dead_letter_queue_url for _, params in gateway_calls.calls)
    buckets = [params for _, params in gateway_calls.calls + worker_calls.calls if "Bucket" in params]
    assert buckets and all(p["Bucket"] == res.bucket for p in buckets)


async def _status(client: httpx.AsyncClient, request_id: str) -> str:
    return str((await client.get(f"/{request_id}")).json().get("status"))


async def _wait_status(client: httpx.AsyncClient, request_id: str, statuses: tuple[str, ...]) -> None:
    with anyio.fail_after(30):
        while await _status(client, request_id) not in statuses:
            await anyio.sleep(0.05)


async def _drive(gateway: Gateway, dlq_url: str) -> None:
    async def oversize() -> Any:
        for _ in range(3):
            yield b"y" * (8 * 1024 * 1024)

    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as client:
        ids = [(await client.post("/", content=b'{"sleep": 1.2}')).json()["id"],  # held past one renewal
               (await client.post("/", content=b"x" * (9 * 1024 * 1024))).json()["id"]]  # a multipart upload
        assert (await client.post("/", content=oversize())).status_code == 413  # an aborted multipart upload
        for request_id in ids:
            await _wait_status(client, request_id, ("completed", "failed"))
        # A message SQS moved to the DLQ is drained into a failed outcome.
        lost = "6f1c1f7e-2f5b-4a57-9a43-0d6c2d1f0a10"
        sqs_client(2).send_message(QueueUrl=dlq_url, MessageBody=lost)
        await _wait_status(client, lost, ("failed",))

