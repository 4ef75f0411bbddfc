"""Real AsyncAPI processes on 127.0.0.1 for the live tests: a moto server, the API's queues and
bucket on it, the gateway, workers and the test container (tests/live/async_app.py), all stopped at
the end of a test whatever happens."""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cortex_iac.queue import contract
from cortex_iac.queue.contract import GatewayConfig, WorkerConfig
from cortex_iac.queue.provision import LocalResources, create_resources
from tests.live.moto_server import MotoServer
from tests.live.procs import free_port, port_open, stop

ASYNC_APP = Path(__file__).with_name("async_app.py")
_COUNTER = itertools.count()


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (bounded); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(interval)


@dataclass
class AsyncApi:
    """One API's resources on the moto server, and the processes a test started for it."""

    tmp: Path
    moto: MotoServer
    name: str
    visibility_timeout: int = 4
    max_attempts: int = 3
    resources: LocalResources | None = None
    app_port: int = field(default_factory=free_port)
    gateway_port: int = 0
    gateway_metrics_port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def create(self) -> None:
        self.resources = create_resources(self.moto.client("sqs"), self.moto.client("s3"), self.name,
                                          bucket=f"{self.name}-bucket", visibility_timeout=self.visibility_timeout,
                                          max_attempts=self.max_attempts)

    @property
    def res(self) -> LocalResources:
        assert self.resources is not None
        return self.resources

    @property
    def prefix(self) -> str:
        return contract.default_key_prefix(self.name)

    @property
    def app_log(self) -> Path:
        return self.tmp / f"{self.name}-app-calls.log"

    def _spawn(self, cmd: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
        import os

        with (self.tmp / log_name).open("ab") as out:
            proc = subprocess.Popen(cmd, env={**os.environ, **self.moto.env(), **env}, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def _wait_port(self, proc: subprocess.Popen[bytes], port: int, log_name: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{log_name}: not listening on {port}:\n{self.log(log_name)[-3000:]}")
            time.sleep(0.05)

    def log(self, log_name: str) -> str:
        path = self.tmp / log_name
        return path.read_text(errors="replace") if path.exists() else ""

    def start_app(self) -> subprocess.Popen[bytes]:
        proc = self._spawn([sys.executable, str(ASYNC_APP), str(self.app_port), str(self.app_log)], {},
                           f"{self.name}-app.log")
        self._wait_port(proc, self.app_port, f"{self.name}-app.log")
        return proc

    def start_gateway(self, **settings: Any) -> subprocess.Popen[bytes]:
        self.gateway_port, self.gateway_metrics_port = free_port(), free_port()
        config = GatewayConfig(api_name=self.name, queue_url=self.res.queue_url, bucket=self.res.bucket,
                               host="127.0.0.1", port=self.gateway_port, metrics_port=self.gateway_metrics_port,
                               **settings)
        proc = self._spawn([sys.executable, "-m", "cortex_iac.queue.gateway"], config.to_env(), f"{self.name}-gateway.log")
        self._wait_port(proc, self.gateway_port, f"{self.name}-gateway.log")
        return proc

    def start_worker(self, *, wait_started: bool = True, **settings: Any) -> tuple[subprocess.Popen[bytes], str]:
        """A worker process and the name of its log file."""
        admin = free_port()
        settings.setdefault("visibility_timeout", self.visibility_timeout)
        settings.setdefault("max_attempts", self.max_attempts)
        settings.setdefault("dead_letter_poll_interval", 0.5)
        settings.setdefault("receive_wait", 1)
        settings.setdefault("grace_period", 10.0)
        config = WorkerConfig(api_name=self.name, queue_url=self.res.queue_url, bucket=self.res.bucket,
                              dead_letter_queue_url=self.res.dead_letter_queue_url, user_port=self.app_port,
                              admin_port=admin, **settings)
        log_name = f"{self.name}-worker-{next(_COUNTER)}.log"
        proc = self._spawn([sys.executable, "-m", "cortex_iac.queue.worker"], config.to_env(), log_name)
        if wait_started:
            self._wait_port(proc, admin, log_name)
        return proc, log_name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def submit(self, client: httpx.Client, body: Any = None, **kwargs: Any) -> str:
        import json

        response = client.post(self.url + "/", content=json.dumps(body or {}).encode(),
                               headers={"Content-Type": "application/json", **kwargs.pop("headers", {})}, **kwargs)
        assert response.status_code == 200, response.text
        request_id = response.json()["id"]
        uuid.UUID(request_id)
        return str(request_id)

    def status(self, client: httpx.Client, request_id: str) -> dict[str, Any]:
        response = client.get(f"{self.url}/{request_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_status(self, client: httpx.Client, request_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        return dict(wait_for(lambda: (s := self.status(client, request_id))["status"] == status and s,
                             timeout, f"{request_id} to be {status}"))

    def app_calls(self, kind: str) -> list[str]:
        if not self.app_log.exists():
            return []
        return [line.split()[1] for line in self.app_log.read_text().splitlines() if line.startswith(kind + " ")]

    def objects(self) -> list[str]:
        answer = self.moto.client("s3").list_objects_v2(Bucket=self.res.bucket, Prefix=self.prefix)
        return [item["Key"] for item in answer.get("Contents", [])]

    def queue_counts(self, url: str) -> tuple[int, int]:
        attributes = self.moto.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def stop_all(self) -> None:
        """SIGTERM every process at once, then wait (SIGKILL after 5 s)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            stop(proc, grace=2.0)


@contextlib.contextmanager
def async_api(tmp: Path, moto: MotoServer, name: str, **settings: Any) -> Iterator[AsyncApi]:
    api = AsyncApi(tmp=tmp, moto=moto, name=name, **settings)
    api.create()
    try:
        yield api
    finally:
        api.stop_all()
