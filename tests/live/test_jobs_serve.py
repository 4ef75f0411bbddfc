"""``cortex serve`` of a job API, live: the real command on ``examples/batch-sum/`` (its own moto
server, the job gateway, the local Kubernetes API stand-in running each job's worker and handler as
processes), a job run to ``succeeded`` with exact metrics, then SIGTERM with a job still running:
``cortex serve`` exits 0 and leaves no process behind, the job's included."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live.moto_server import moto_server
from tests.live.procs import free_port

pytestmark = pytest.mark.live

REPO = Path(__file__).resolve().parents[2]
BATCH_SUM = REPO / "examples" / "batch-sum" / "api.yaml"


def _descendants(pid: int) -> dict[int, str]:
    """Every live process below ``pid`` (from /proc), with its command line."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] == "Z":
                continue
            parents[int(entry.name)] = int(fields[1])
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = commands[child]
                frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


class Serve:
    """``cortex serve`` in its own process, its output collected."""

    def __init__(self, api_file: Path, port: int, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from cortex_iac.cli import main; main()", "serve", str(api_file),
             "--port", str(port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self.process.stdout:
                self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = "".join(self.lines)
            if text in output:
                return output
            if self.process.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"cortex serve exited {self.process.returncode}:\n" + "".join(self.lines))
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not printed in time:\n" + "".join(self.lines))


@pytest.fixture
def serve() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        below = _descendants(s.process.pid)
        if s.process.poll() is None:
            s.process.send_signal(signal.SIGTERM)
            try:
                s.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                s.process.kill()
                s.process.wait()
        for pid in below:  # whatever it left (only when the test failed): process groups included
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        s.reader.join(10)
        assert s.process.stdout is not None
        s.process.stdout.close()


def _status(http: httpx.Client, url: str, job_id: str) -> dict[str, object]:
    response = http.get(url, params={"jobID": job_id})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _run_to_end(http: httpx.Client, url: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the job's status until it leaves pending/enqueuing/running (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = _status(http, url, job_id)
        if body["job_status"]["status"] not in ("pending", "enqueuing", "running"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_serve_batch_sum_runs_a_job_and_stops_without_orphans(serve: list[Serve]) -> None:
    port = free_port()
    s = Serve(BATCH_SUM, port)
    serve.append(s)
    url = f"http://127.0.0.1:{port}/sum"
    banner = s.wait_for("stop:    curl")
    assert f"sum: BatchAPI on {url}  (Ctrl-C to stop)" in banner
    assert f"submit:  curl -s -X POST {url} -H 'Content-Type: application/json' -d '" in banner
    assert f"status:  curl -s '{url}?jobID=<job_id>'" in banner
    assert f"stop:    curl -s -X DELETE '{url}?jobID=<job_id>'" in banner
    pods = re.search(r"container logs: (\S+)/<job pod>", banner)
    assert pods is not None
    with httpx.Client(timeout=30) as http:
        # 20 numbers in batches of 3: 7 batches, the last one short; two workers.
        submitted = http.post(url, json={"workers": 2, "item_list": {"items": list(range(1, 21)), "batch_size": 3}})
        assert submitted.status_code == 200, submitted.text
        job_id = str(submitted.json()["job_id"])
        body = _run_to_end(http, url, job_id)
        assert body["job_status"]["status"] == "succeeded", body
        assert body["job_status"]["total_batch_count"] == 7
        assert body["job_status"]["batches_in_queue"] == 0
        assert body["metrics"]["succeeded"] == 7 and body["metrics"]["failed"] == 0, body
        # The user's handler answered every batch (its log says each batch's sum): 1 + ... + 20.
        handler_logs = "".join(p.read_text(errors="replace") for p in Path(pods.group(1)).glob("*/api.log"))
        sums = [int(m) for m in re.findall(r"batch of \d+ items: sum (\d+)", handler_logs)]
        assert sorted(sums) == sorted([6, 15, 24, 33, 42, 51, 39]), handler_logs[-2000:]
        # One worker posted /on-job-complete; the runtime handed it to the handler's on_job_complete.
        ended = re.findall(rf"job {job_id} ended (\w+): (.*)", handler_logs)
        assert len(ended) == 1, handler_logs[-2000:]
        assert ended[0][0] == "succeeded" and "'succeeded': 7, 'failed': 0" in ended[0][1], ended

        # A long job, running when cortex serve is stopped: its worker and handler must go too.
        long = http.post(url, json={"workers": 1, "item_list": {"items": list(range(150)), "batch_size": 1}})
        assert long.status_code == 200, long.text
        long_id = str(long.json()["job_id"])
        # 150 batches enqueue in a few seconds; processing them takes far longer (~0.2 s each here).
        deadline = time.monotonic() + 40
        while True:
            below = _descendants(s.process.pid)
            commands = " ".join(below.values())
            if "cortex_iac.jobs.worker" in commands and "cortex_iac.serving" in commands:
                break
            assert time.monotonic() < deadline, below
            time.sleep(0.2)
        assert _status(http, url, long_id)["job_status"]["status"] in ("enqueuing", "running")  # type: ignore[index]
        for needle in ("cortex_iac.local_moto", "cortex_iac.jobs.gateway"):
            assert needle in commands, below
    s.process.send_signal(signal.SIGTERM)
    assert s.process.wait(timeout=40) == 0, "".join(s.lines)
    left = {pid: cmd for pid, cmd in below.items() if _alive(pid)}
    assert left == {}, left
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_serve_against_a_given_endpoint_stops_a_job_and_reuses_its_table(serve: list[Serve], tmp_path: Path) -> None:
    # --aws-endpoint: no moto server of its own (the given one is not stopped), the job table created
    # once and kept, so a second run still reads the first run's job. And DELETE stops a running job.
    with moto_server(tmp_path) as moto, httpx.Client(timeout=30) as http:
        port = free_port()
        url = f"http://127.0.0.1:{port}/sum"
        first = Serve(BATCH_SUM, port, "--aws-endpoint", moto.url, env=moto.env())
        serve.append(first)
        banner = first.wait_for("stop:    curl")
        assert f"job table and queues on {moto.url};" in banner
        submitted = http.post(url, json={"workers": 1, "item_list": {"items": [1, 2, 3, 4], "batch_size": 4}})
        assert submitted.status_code == 200, submitted.text
        job_id = str(submitted.json()["job_id"])
        body = _run_to_end(http, url, job_id)
        assert (body["job_status"]["status"], body["metrics"]["succeeded"], body["metrics"]["failed"]) == (
            "succeeded", 1, 0), body
        # Stop (DELETE) a running job: status stopped, and its worker and handler processes end.
        long = http.post(url, json={"workers": 1, "item_list": {"items": list(range(150)), "batch_size": 1}})
        assert long.status_code == 200, long.text
        long_id = str(long.json()["job_id"])
        deadline = time.monotonic() + 40
        while "cortex_iac.jobs.worker" not in " ".join(_descendants(first.process.pid).values()):
            assert time.monotonic() < deadline, _status(http, url, long_id)
            time.sleep(0.2)
        job_processes = {pid: cmd for pid, cmd in _descendants(first.process.pid).items()
                         if "cortex_iac.jobs.worker" in cmd or "cortex_iac.serving" in cmd}
        assert any("cortex_iac.serving" in cmd for cmd in job_processes.values()), job_processes
        stopped = http.delete(url, params={"jobID": long_id})
        assert stopped.status_code == 200, stopped.text
        assert _status(http, url, long_id)["job_status"]["status"] == "stopped"  # type: ignore[index]
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in job_processes):
            assert time.monotonic() < deadline, {p: c for p, c in job_processes.items() if _alive(p)}
            time.sleep(0.2)
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(timeout=40) == 0, "".join(first.lines)
        assert moto.proc is not None and moto.proc.poll() is None  # not ours to stop
        assert "sum-jobs" in moto.client("dynamodb").list_tables()["TableNames"]

        second = Serve(BATCH_SUM, port, "--aws-endpoint", moto.url, env=moto.env())
        serve.append(second)
        second.wait_for("stop:    curl")
        again = _status(http, url, job_id)
        assert again["job_status"]["status"] == "succeeded"  # type: ignore[index]
        assert again["metrics"] == body["metrics"]
