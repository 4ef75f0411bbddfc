"""The sidecar's liveness probe, run as the kubelet runs it (its exec command) against real Envoy."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from cortex_iac.render.envoy import LIVENESS_PATH, READINESS_PATH, liveness_probe
from tests.live.procs import envoy_sidecar, port_open, slow_app, stop


def _probe(metrics_port: int) -> int:
    probe = liveness_probe(metrics_port)
    done = subprocess.run(probe["exec"]["command"], timeout=probe["timeoutSeconds"], check=False,
                          capture_output=True)
    return done.returncode


def _admin(sidecar_admin: int, path: str) -> None:
    assert httpx.post(f"http://127.0.0.1:{sidecar_admin}{path}", timeout=5).status_code == 200


def test_liveness_passes_while_serving_and_while_draining_and_fails_when_envoy_is_gone(tmp_path: Path) -> None:
    with slow_app(tmp_path, 0.0) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=1, max_queue_length=1, request_timeout_seconds=10) as sidecar:
        assert _probe(sidecar.metrics_port) == 0
        assert httpx.get(f"http://127.0.0.1:{sidecar.metrics_port}{LIVENESS_PATH}", timeout=5).status_code == 200
        # Only GET: anything else on the metrics listener stays 404.
        assert httpx.post(f"http://127.0.0.1:{sidecar.metrics_port}{LIVENESS_PATH}", timeout=5).status_code == 404
        # The preStop's drain: readiness fails, then the traffic listener stops accepting; liveness
        # must keep passing or the kubelet would restart Envoy in the middle of its drain.
        _admin(sidecar.admin_port, "/healthcheck/fail")
        assert httpx.get(f"http://127.0.0.1:{sidecar.listen_port}{READINESS_PATH}", timeout=5).status_code == 503
        _admin(sidecar.admin_port, "/drain_listeners?inboundonly")
        deadline = time.monotonic() + 10
        while port_open(sidecar.listen_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not port_open(sidecar.listen_port)
        assert _probe(sidecar.metrics_port) == 0
        stop(sidecar.proc)
        assert _probe(sidecar.metrics_port) != 0
