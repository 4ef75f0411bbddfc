"""One job API on 127.0.0.1 for the live tests: a moto server, the Kubernetes double, the job table and
the real gateway process (``python -m cortex_iac.jobs.gateway``) with its template file."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cortex_iac.jobs.contract import GatewayConfig, JobKind
from tests.live.jobs_kube import FakeKube
from tests.live.jobs_moto import REGION, Moto, create_job_table
from tests.live.procs import free_port, port_open, stop

CLUSTER = "test-cluster"


@dataclass
class JobApi:
    url: str
    kube: FakeKube
    moto: Moto
    config: GatewayConfig
    http: httpx.Client

    def submit(self, body: Any, **params: str) -> httpx.Response:
        return self.http.post(self.url, json=body, params=params)

    def status(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(self.url, params={"jobID": job_id})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def stop(self, job_id: str) -> httpx.Response:
        return self.http.delete(self.url, params={"jobID": job_id})

    def wait(self, job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 40.0) -> dict[str, Any]:
        """Poll GET until ``until(status JSON)``; fail with the last status after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.status(job_id)
            if until(body):
                return body
            assert time.monotonic() < deadline, f"job {job_id} still {body['job_status']['status']}: {body}"
            time.sleep(0.2)

    def wait_status(self, job_id: str, *statuses: str, timeout: float = 40.0) -> dict[str, Any]:
        return self.wait(job_id, lambda b: b["job_status"]["status"] in statuses, timeout)


@contextlib.contextmanager
def process(cmd: list[str], *, env: dict[str, str], port: int, log: Path, timeout: float = 30.0
            ) -> Iterator[subprocess.Popen[bytes]]:
    """``cmd`` with exactly ``env`` until the block ends, once ``port`` accepts; always stopped."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{cmd} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        stop(proc)


@contextlib.contextmanager
def job_api(tmp: Path, moto: Moto, kube: FakeKube, *, kind: JobKind, api: str, template: dict[str, Any],
            s3_read: tuple[str, ...] = (), api_key: str | None = None) -> Iterator[JobApi]:
    """The gateway of one API (its own table) until the block ends."""
    table = f"{api}-jobs"
    create_job_table(moto, table)
    template_path = tmp / f"{api}-template.json"
    template_path.write_text(json.dumps(template))
    key_file = None
    if api_key is not None:
        key_file = tmp / f"{api}-key"
        key_file.write_text(api_key + "\n")
    port = free_port()
    config = GatewayConfig(
        kind=kind, api_name=api, cluster_name=CLUSTER, endpoint=f"/{api}", namespace=template["metadata"]["namespace"],
        table=table, aws_region=REGION, aws_endpoint_url=moto.url, job_template=str(template_path),
        kube_api_url=kube.url, kube_token_file="", kube_ca_file="", s3_read=s3_read, host="127.0.0.1", port=port,
        api_key_file=str(key_file) if key_file else None, visibility_timeout=3,
    )
    env = {"PATH": os.environ["PATH"], **moto.env(), **config.to_env()}
    with process([sys.executable, "-m", "cortex_iac.jobs.gateway"], env=env, port=port,
                 log=tmp / f"gateway-{api}.log"):
        with httpx.Client(timeout=30.0) as http:
            yield JobApi(url=f"http://127.0.0.1:{port}/{api}", kube=kube, moto=moto, config=config, http=http)
