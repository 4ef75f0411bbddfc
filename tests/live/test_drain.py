"""A pod's shutdown under load, run for real: the Envoy preStop script of ``drain_plan`` (bash, as the
kubelet would run it), then SIGTERM, while clients keep sending.

What counts: a request is *accepted* when its connection to the sidecar was established, i.e. it
did not fail with a refused connection. A refused connection is what a client sees once the
listener stopped accepting, after the load balancer had ``deregistration_seconds`` to stop sending;
a client or load balancer retries it elsewhere. Every accepted request must get a 200.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from cortex_iac.render.envoy import READINESS_PATH, drain_plan
from tests.live.procs import envoy_sidecar, port_open, slow_app

pytestmark = pytest.mark.live

CLIENTS = 4
REQUESTS_PER_CLIENT = 50


@dataclass
class Outcomes:
    """What the clients saw, shared between their threads (under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ok_at: list[float] = field(default_factory=list)
    other_status: list[int] = field(default_factory=list)
    refused: int = 0
    failed_accepted: list[str] = field(default_factory=list)


def _client(url: str, outcomes: Outcomes) -> None:
    with httpx.Client(timeout=10) as client:
        for _ in range(REQUESTS_PER_CLIENT):
            try:
                response = client.get(url)
            except httpx.ConnectError:
                with outcomes.lock:
                    outcomes.refused += 1
                time.sleep(0.01)
                continue
            except httpx.HTTPError as error:  # reset, premature close, timeout: accepted, failed
                with outcomes.lock:
                    outcomes.failed_accepted.append(repr(error))
                continue
            with outcomes.lock:
                if response.status_code == 200:
                    outcomes.ok_at.append(time.monotonic())
                else:
                    outcomes.other_status.append(response.status_code)


def test_shutdown_mid_load_fails_no_accepted_request(tmp_path: Path) -> None:
    outcomes = Outcomes()
    with slow_app(tmp_path, 0.05) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=2, max_queue_length=3,
            request_timeout_seconds=3) as sidecar:
        plan = drain_plan(request_timeout_seconds=3, deregistration_seconds=2,
                          admin_port=sidecar.admin_port)
        listen = f"http://127.0.0.1:{sidecar.listen_port}"
        clients = [threading.Thread(target=_client, args=(f"{listen}/predict", outcomes))
                   for _ in range(CLIENTS)]
        for thread in clients:
            thread.start()
        try:
            time.sleep(1.0)
            # The pod is deleted: the kubelet runs the preStop hook...
            prestop_started = time.monotonic()
            prestop = subprocess.Popen(plan.envoy_prestop_command)
            time.sleep(0.5)
            readiness = httpx.get(f"{listen}{READINESS_PATH}", timeout=5).status_code
            prestop_rc = prestop.wait(plan.deregistration_seconds + plan.drain_timeout_seconds + 5)
            prestop_took = time.monotonic() - prestop_started
            listener_open_after_prestop = port_open(sidecar.listen_port)
            # ...then SIGTERMs the container.
            sidecar.proc.terminate()
            envoy_rc = sidecar.proc.wait(5)
        finally:
            for thread in clients:
                thread.join(30)
        app_served = httpx.get(f"http://127.0.0.1:{app}/__stats", timeout=5).json()["served"]

    assert not any(thread.is_alive() for thread in clients)
    assert readiness == 503  # readiness failed as soon as the preStop began
    assert prestop_rc == 0 and not listener_open_after_prestop
    # The app container (preStop sleep of app_prestop_sleep_seconds) outlives Envoy's drain.
    assert prestop_took < plan.app_prestop_sleep_seconds
    assert envoy_rc == 0

    assert outcomes.failed_accepted == []
    assert outcomes.other_status == []
    answered = len(outcomes.ok_at)
    assert answered + outcomes.refused == CLIENTS * REQUESTS_PER_CLIENT
    assert app_served == answered  # every 200 came from the app, none was lost on the way
    # The shutdown really happened mid-load: requests were served after readiness failed (while
    # the load balancer would still be sending), and later ones were refused.
    assert sum(1 for t in outcomes.ok_at if t > prestop_started + 0.5) > 0
    assert outcomes.refused > 0
