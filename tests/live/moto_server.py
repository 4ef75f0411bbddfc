"""A real moto server on 127.0.0.1 for the AsyncAPI and job API live tests: SQS, S3 and DynamoDB over
HTTP, started and stopped by the tests (also mid-test, to make the backend unreachable)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from cortex_iac import local_moto
from tests.live.procs import free_port, port_open

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def moto_command(port: int) -> list[str]:
    # moto's server with atomic DynamoDB operations (cortex_iac/local_moto.py), as `cortex serve` runs it.
    if not local_moto.installed():
        raise RuntimeError("moto's server is not installed (pip install 'moto[server]')")
    return local_moto.command(port)


class MotoServer:
    """One moto server process; ``stop`` and ``start`` again on the same port (its state is lost)."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The same as ``endpoint`` (the job APIs' tests call it that)."""
        return self.endpoint

    def env(self) -> dict[str, str]:
        """The AWS SDK variables that point a process at this server."""
        return {**CREDENTIALS, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint}

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(moto_command(self.port), stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto_server did not start on {self.port}:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        deadline = time.monotonic() + 10
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=2, read_timeout=30),
        )


@contextlib.contextmanager
def moto_server(tmp: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
