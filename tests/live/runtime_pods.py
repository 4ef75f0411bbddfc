"""The two shapes of a RealtimeAPI pod, started for real on 127.0.0.1 for the Prometheus live tests.

- ``envoy``: an Envoy sidecar (tests/live/procs.py) in front of an app; Prometheus scrapes Envoy's
  metrics port (pod port ``envoy-metrics``, job ``cortex-envoy``);
- ``runtime``: the serving runtime alone (``python -m cortex_iac.serving`` with ``max_concurrency``:
  it admits requests itself), its ``/metrics`` on a metrics port of its own (pod port
  ``cortex-metrics``, job ``cortex-runtime``).

Both production scrape jobs run with their pod discovery swapped for static targets carrying the
``__meta_kubernetes_*`` labels discovery would attach to every container port of the pods
(:func:`pod_targets`), so each job's own relabelling picks its pods and ports and sets the
``namespace``/``pod``/``api`` labels the queries select on.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from cortex_iac.local import free_port
from cortex_iac.render.envoy import API_NAME_LABEL, METRICS_PORT_NAME, prometheus_scrape_job, runtime_scrape_job
from cortex_iac.runtime_contract import READINESS_PATH, RUNTIME_METRICS_PORT_NAME
from tests.live.procs import envoy_sidecar, running

Shape = Literal["envoy", "runtime"]
SLEEP_HANDLER = Path(__file__).with_name("sleep_handler.py")
# The port name of a pod's traffic port: never scraped by either job.
TRAFFIC_PORT_NAME = "http"


@dataclass(frozen=True)
class Pod:
    """A running pod of one shape: where its traffic goes, where Prometheus scrapes it, its log."""

    shape: Shape
    listen_port: int
    metrics_port: int
    log: Path

    @property
    def metrics_port_name(self) -> str:
        return METRICS_PORT_NAME if self.shape == "envoy" else RUNTIME_METRICS_PORT_NAME

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}/"

    def records(self) -> list[dict[str, Any]]:
        """The runtime's JSON log lines so far (a runtime pod's only)."""
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]


@contextlib.contextmanager
def runtime_pod(tmp: Path, handler: Path = SLEEP_HANDLER, *, max_concurrency: int, max_queue_length: int,
                request_timeout: float, handler_config: dict[str, Any] | None = None,
                ready_timeout: float = 30.0) -> Iterator[Pod]:
    """The serving runtime alone on free ports, admitting requests itself; yields once
    :data:`~cortex_iac.runtime_contract.READINESS_PATH` answers 200."""
    listen, metrics = free_port(), free_port()
    env = {"CORTEX_HANDLER_PATH": str(handler), "CORTEX_HOST": "127.0.0.1", "CORTEX_PORT": str(listen),
           "CORTEX_METRICS_PORT": str(metrics), "CORTEX_MAX_CONCURRENCY": str(max_concurrency),
           "CORTEX_MAX_QUEUE_LENGTH": str(max_queue_length), "CORTEX_REQUEST_TIMEOUT": str(request_timeout),
           "CORTEX_LOG_LEVEL": "info", "CORTEX_GRACE_PERIOD": "3",
           "CORTEX_HANDLER_CONFIG": json.dumps(handler_config or {})}
    log = tmp / f"runtime-{listen}.log"
    cmd = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "cortex_iac.serving"]
    with running(cmd, ports=[listen, metrics], log=log, timeout=ready_timeout) as proc:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{listen}{READINESS_PATH}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the runtime on {listen} never became ready:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield Pod("runtime", listen, metrics, log)


@contextlib.contextmanager
def envoy_pod(tmp: Path, app_port: int, *, max_concurrency: int, max_queue_length: int,
              request_timeout: float) -> Iterator[Pod]:
    """An Envoy sidecar in front of the app on ``app_port``."""
    with envoy_sidecar(tmp, app_port=app_port, max_concurrency=max_concurrency, max_queue_length=max_queue_length,
                       request_timeout_seconds=request_timeout) as sidecar:
        yield Pod("envoy", sidecar.listen_port, sidecar.metrics_port, tmp / f"envoy-{sidecar.listen_port}.log")


def pod_target(namespace: str, pod: str, api: str | None, port: int, port_name: str) -> dict[str, Any]:
    """A static target as pod discovery gives one container port of a pod."""
    labels = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_container_port_name": port_name,
    }
    if api is not None:
        # Pod discovery's name for a pod label: every character outside [a-zA-Z0-9_] becomes "_".
        labels["__meta_kubernetes_pod_label_" + re.sub(r"\W", "_", API_NAME_LABEL)] = api
    return {"targets": [f"127.0.0.1:{port}"], "labels": labels}


def pod_targets(namespace: str, name: str, api: str | None, pod: Pod) -> list[dict[str, Any]]:
    """Every container port of ``pod`` as discovery gives it: its metrics port and its traffic port."""
    return [pod_target(namespace, name, api, pod.metrics_port, pod.metrics_port_name),
            pod_target(namespace, name, api, pod.listen_port, TRAFFIC_PORT_NAME)]


def scrape_jobs(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Both production scrape jobs, each given every target (each keeps its own pods' ports)."""
    jobs = []
    for job in (prometheus_scrape_job(), runtime_scrape_job()):
        del job["kubernetes_sd_configs"]
        job["static_configs"] = targets
        jobs.append(job)
    return jobs


JOB_OF_SHAPE: dict[Shape, str] = {"envoy": prometheus_scrape_job()["job_name"], "runtime": runtime_scrape_job()["job_name"]}
