"""The gateway's memory stays bounded with many large uploads at once: at most
``GATEWAY_LARGE_UPLOADS`` buffer more than a megabyte; the others wait unread, and all succeed.
In-process, against recording S3/SQS stand-ins (the streaming itself is tested live)."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import httpx

from cortex_iac.queue import contract
from cortex_iac.queue.contract import GatewayConfig
from cortex_iac.queue.gateway import Gateway


class FakeS3:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open_uploads = 0
        self.most_open = 0
        self.objects: dict[str, int] = {}

    def put_object(self, Key: str, Body: bytes, **_: Any) -> None:  # noqa: N803 - boto3's names
        self.objects[Key] = len(Body)

    def create_multipart_upload(self, **_: Any) -> dict[str, str]:
        with self.lock:
            self.open_uploads += 1
            self.most_open = max(self.most_open, self.open_uploads)
        return {"UploadId": "u"}

    def upload_part(self, Body: bytes, **_: Any) -> dict[str, str]:  # noqa: N803
        time.sleep(0.05)  # a slow store: uploads overlap
        return {"ETag": "e"}

    def complete_multipart_upload(self, Key: str, **_: Any) -> None:  # noqa: N803
        with self.lock:
            self.open_uploads -= 1
        self.objects[Key] = -1

    def abort_multipart_upload(self, **_: Any) -> None:
        with self.lock:
            self.open_uploads -= 1


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_message(self, MessageBody: str, **_: Any) -> None:  # noqa: N803
        self.sent.append(MessageBody)


def test_many_large_uploads_at_once_are_bounded_and_all_succeed() -> None:
    s3, sqs = FakeS3(), FakeSqs()
    gateway = Gateway(GatewayConfig(api_name="big", queue_url="q", bucket="b"), s3=s3, sqs=sqs)
    uploads = contract.GATEWAY_LARGE_UPLOADS + 6
    codes: list[int] = []

    async def body() -> Any:
        for _ in range(20):  # 20 MiB: two full parts and a last one
            yield b"x" * (1024 * 1024)
            await anyio.sleep(0)

    async def one(client: httpx.AsyncClient) -> None:
        codes.append((await client.post("/", content=body())).status_code)

    async def main() -> None:
        transport = httpx.ASGITransport(app=gateway.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60) as client:
            async with anyio.create_task_group() as group:
                for _ in range(uploads):
                    group.start_soon(one, client)

    anyio.run(main)
    assert codes == [200] * uploads
    assert len(sqs.sent) == uploads
    assert s3.most_open == contract.GATEWAY_LARGE_UPLOADS  # never more at once, and the bound was reached
    assert s3.open_uploads == 0
