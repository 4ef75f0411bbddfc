"""A pod's shutdown under load, run for real: the Envoy preStop script of ``drain_plan`` (bash, as
the kubelet would run it), then SIGTERM, while clients keep sending.

What counts: a request is *accepted* when Envoy read it, i.e. it is counted in Envoy's
``http.ingress.downstream_rq_total``. Every accepted request must be answered 200 by the app. What a
client may see instead, only after the listener stopped accepting (by then the load balancer had
``deregistration_seconds`` to stop sending, and it retries such a failure on another pod): a
refused connection, or a connection reset before Envoy read anything (it was still in the
kernel's accept queue when the listener closed). The test sends on through the whole shutdown, so
it sees both; a real load balancer would not.
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
    errors: list[httpx.HTTPError] = field(default_factory=list)


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
            except httpx.HTTPError as error:
                with outcomes.lock:
                    outcomes.errors.append(error)
                continue
            with outcomes.lock:
                if response.status_code == 200:
                    outcomes.ok_at.append(time.monotonic())
                else:
                    outcomes.other_status.append(response.status_code)


def _ingress_stats(admin_port: int) -> dict[str, int]:
    page = httpx.get(f"http://127.0.0.1:{admin_port}/stats",
                     params={"filter": r"^http\.ingress\.downstream_rq_(total|2xx)$"}, timeout=5)
    return {name.removeprefix("http.ingress."): int(value)
            for name, value in (line.split(": ") for line in page.text.splitlines())}


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
            accepted = _ingress_stats(sidecar.admin_port)
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

    answered = len(outcomes.ok_at)
    assert outcomes.other_status == []
    assert answered + outcomes.refused + len(outcomes.errors) == CLIENTS * REQUESTS_PER_CLIENT
    # Every request Envoy accepted (all but the one readiness probe, which Envoy answers itself and
    # leaves out of the response-code counters) got a 200 from the app, and the clients received
    # each of those 200s.
    assert accepted["downstream_rq_total"] - 1 == accepted["downstream_rq_2xx"] == answered
    assert app_served == answered
    # So client errors other than a refused connection are resets of connections Envoy never read.
    assert all(isinstance(e, httpx.ReadError | httpx.RemoteProtocolError)
               for e in outcomes.errors), outcomes.errors
    # The shutdown really happened mid-load: requests were served after readiness failed (while
    # the load balancer would still be sending), and later ones were refused.
    assert sum(1 for t in outcomes.ok_at if t > prestop_started + 0.5) > 0
    assert outcomes.refused > 0
