"""`cortex serve` of an AsyncAPI, for real: the CLI starts a moto server, the gateway, the queue worker
and the handler's runtime; a request is submitted and polled with plain HTTP; SIGTERM stops them all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live.async_harness import wait_for
from tests.live.procs import free_port, port_open

pytestmark = pytest.mark.live

HANDLER = """
import time

class Handler:
    def __init__(self, config):
        self.delay = float(config["delay"])

    def handle_post(self, payload):
        time.sleep(self.delay)
        return [payload, "done"]
"""
API = """
- name: slow-echo
  kind: AsyncAPI
  pod:
    max_concurrency: 2
    containers:
      - name: api
        handler:
          path: handler.py
          config: {delay: 1}
"""


def test_cortex_serve_runs_the_async_contract_locally_and_stops_like_a_pod(tmp_path: Path) -> None:
    (tmp_path / "handler.py").write_text(HANDLER)
    (tmp_path / "api.yaml").write_text(API)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cortex_iac.cli", "serve", str(tmp_path / "api.yaml"),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "submit:" in log.read_text() or proc.poll() is not None, 60, "the banner")
        text = log.read_text()
        assert proc.poll() is None, text
        url = f"http://127.0.0.1:{port}/slow-echo"
        assert f"curl -s -X POST {url} -H 'Content-Type: application/json'" in text
        assert f"curl -s {url}/<id>" in text
        with httpx.Client(timeout=10) as client:
            ids = [client.post(url, json={"n": n}).json()["id"] for n in range(3)]
            for n, request_id in enumerate(ids):
                done = wait_for(lambda rid=request_id: (a := client.get(f"{url}/{rid}").json())["status"] == "completed"
                                and a, 30, f"{request_id} to complete")
                assert done["result"] == [{"n": n}, "done"]  # a list result, which Cortex answered with 500
            assert client.get(f"{url}/{ids[0][::-1]}").status_code == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        deadline = time.monotonic() + 5
        while port_open(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not port_open(port)
    finally:
        if proc.poll() is None:  # a failed assertion: SIGTERM first, so cortex serve stops its children
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
