"""`serve_api` (the body of `cortex serve`): choosing the API, refusing what cannot run here, and
serving for real as a handler API's pod serves (no sidecar: the runtime admits requests itself)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cortex_iac.errors import SpecError
from cortex_iac.local import ServeError, serve_api
from tests.needs import missing
from tests.serving.runtime import HANDLERS

FAULTS = HANDLERS / "faults.py"


def _api(name: str = "echo", handler: Path | str = FAULTS.name, extra: str = "", pod: str = "") -> str:
    # Handler paths are relative to the API file: _write copies the test handlers beside it.
    return f"""
- name: {name}
  kind: RealtimeAPI
  pod:
    {pod or "max_concurrency: 1"}
    containers:
      - name: api
        handler:
          path: {handler}
          config: {{greeting: "served locally"}}
{extra}"""


TASK_API = """
- name: q
  kind: TaskAPI
  pod:
    containers:
      - name: w
        image: busybox
        command: ["true"]
"""
BATCH_IMAGE_API = TASK_API.replace("name: q", "name: b").replace("TaskAPI", "BatchAPI")
SPLITTER = _api("a") + """
- name: s
  kind: TrafficSplitter
  apis:
    - name: a
      weight: 100
"""
IMAGE_API = """
- name: img
  kind: RealtimeAPI
  pod:
    containers:
      - name: api
        image: nginx:1.29
"""
IMAGE_REFUSAL = (
    "API 'img': container 'api' runs the image 'nginx:1.29', and cortex serve runs handler containers only "
    "(there is no Docker engine here)"
)


def _write(tmp_path: Path, text: str) -> str:
    for handler in HANDLERS.glob("*.py"):
        (tmp_path / handler.name).write_text(handler.read_text())
    path = tmp_path / "api.yaml"
    path.write_text(text)
    return str(path)


def test_a_missing_handler_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"handler.path: 'missing.py' is not allowed \(must name an existing file"):
        serve_api(_write(tmp_path, _api(handler="missing.py")), name=None, port=1)


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        (_api("a") + _api("b"), None, "defines 2 APIs (a, b): choose one with --name"),
        (_api("a"), "z", ": no API named 'z' (APIs in the file: a)"),
        (TASK_API, None, "api.yaml: TaskAPI 'q': container 'w' runs the image 'busybox'; cortex serve runs a job API "
                         "only when its containers give a `handler:` (there is no Docker engine here)"),
        (BATCH_IMAGE_API, None, "api.yaml: BatchAPI 'b': container 'w' runs the image 'busybox'; cortex serve runs"),
        (SPLITTER, None, "api.yaml: API 's': kind TrafficSplitter cannot be served by this version of cortex_iac yet; "
                         "supported: RealtimeAPI, AsyncAPI, BatchAPI, TaskAPI"),
        (IMAGE_API, None, IMAGE_REFUSAL),
        (_api(extra="          python_requirements: [not-a-package-xyz==1.0, starlette<0.1]\n"), None,
         "API 'echo': python_requirements not satisfied here: not-a-package-xyz==1.0; starlette<0.1 (installed: "),
    ],
)
def test_what_cannot_be_served_is_refused_clearly(tmp_path: Path, text: str, name: str | None, message: str) -> None:
    with pytest.raises(ServeError) as error:
        serve_api(_write(tmp_path, text), name=name or ("s" if "TrafficSplitter" in text else None), port=1)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_the_image_task_example_is_refused_before_anything_starts() -> None:
    # A TaskAPI's containers must be images (spec layer), and images need Docker: refused in one line,
    # naming the file and the container, before any port or process is taken.
    api_file = Path(__file__).resolve().parents[2] / "examples" / "task-iris-trainer" / "api.yaml"
    with pytest.raises(ServeError) as error:
        serve_api(str(api_file), name=None, port=1)
    assert str(error.value) == (
        f"{api_file}: TaskAPI 'iris-trainer': container 'trainer' runs the image "
        "'registry.example.com/ml/iris-trainer:1'; cortex serve runs a job API only when its containers give a "
        "`handler:` (there is no Docker engine here)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """`serve_api` running in its own Python process (as `cortex serve` would)."""

    def __init__(self, api_file: str, port: int) -> None:
        code = "import sys; from cortex_iac.local import serve_api; " \
               f"sys.exit(serve_api({api_file!r}, name=None, port={port}))"
        self.port = port
        self.process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)

    def wait_banner(self, timeout: float = 60) -> list[str]:
        """Read output until the URL line; return the lines read."""
        assert self.process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError("serve exited:\n" + "".join(lines))
            lines.append(line)
            if "serving on http://127.0.0.1:" in line:
                lines.append(self.process.stdout.readline())
                # Keep reading (access lines under load), so the pipe never fills and blocks the server.
                self.rest: list[str] = []
                threading.Thread(target=self._read_rest, daemon=True).start()
                return lines
        raise AssertionError("no URL printed in time:\n" + "".join(lines))

    def _read_rest(self) -> None:
        with contextlib.suppress(ValueError, OSError):  # the pipe closed
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.rest.append(line)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=40)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


@pytest.fixture
def served() -> Iterator[list[Served]]:
    running: list[Served] = []
    yield running
    for server in running:
        if server.process.poll() is None:
            # SIGTERM first: serve drains its runtime (own session) before it exits.
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        if server.process.stdout is not None:
            server.process.stdout.close()


@pytest.mark.live
def test_the_runtime_enforces_the_limits_and_stops(tmp_path: Path, served: list[Served]) -> None:
    port = _free_port()
    server = Served(_write(tmp_path, _api(pod="max_concurrency: 1\n    max_queue_length: 1")), port)
    served.append(server)
    banner = "".join(server.wait_banner())
    assert f"echo: serving on http://127.0.0.1:{port}/" in banner
    assert "max_concurrency 1, max_queue_length 1, request_timeout 60 s" in banner
    metrics_url = re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", banner).group(1)  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/"
    assert httpx.get(url, timeout=10).text == "served locally"
    assert httpx.get(f"{url}-/ready", timeout=10).json() == {"status": "ready"}
    assert httpx.get(f"{url}metrics", timeout=10).status_code == 404  # only on the metrics port
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = [pool.submit(httpx.post, url, json={"do": "sleep", "seconds": 1.0}, timeout=10) for _ in range(2)]
        time.sleep(0.4)
        refused = httpx.post(url, json={"x": 1}, timeout=10)
        # One request runs, one waits, no room for a third: 503 at once, with when to come back.
        assert (refused.status_code, refused.headers["retry-after"]) == (503, "1")
        assert [future.result().json() for future in slow] == [{"slept": 1.0}] * 2
    assert httpx.post(url, json={"x": 2}, timeout=10).status_code == 200
    metrics = httpx.get(metrics_url, timeout=10).text
    assert 'cortex_requests_rejected_total{reason="queue_full"} 1.0' in metrics
    assert "cortex_requests_in_flight 0.0" in metrics
    assert server.stop() == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


@pytest.mark.live
def test_a_handler_that_fails_to_load_ends_serve_with_its_code(tmp_path: Path, served: list[Served]) -> None:
    server = Served(_write(tmp_path, _api(handler="failing_init.py")), _free_port())
    served.append(server)
    output, _ = server.process.communicate(timeout=40)
    assert server.process.returncode == 1
    assert "FileNotFoundError: model.pkl is missing" in output
    assert "serving on" not in output


def test_the_iris_example_is_a_servable_api() -> None:
    from cortex_iac.local import _handler_container, _pick_api
    from cortex_iac.specs import load_apis

    api_file = str(Path(__file__).resolve().parents[2] / "examples" / "iris-classifier" / "api.yaml")
    api = _pick_api(load_apis(api_file), api_file, None)
    handler = _handler_container(api).handler
    assert handler is not None
    assert (Path(api_file).parent / handler.path).is_file()
    assert (api.name, api.pod.max_concurrency, handler.python_requirements) == (
        "iris-classifier", 4, ["scikit-learn==1.9.1"]
    )


def _wrk(port: int, seconds: int, body_file: Path) -> dict[str, int]:
    """One wrk round (16 connections, 2 threads) POSTing the echo payload; its error counters."""
    output = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "-s", str(body_file), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 30, check=False,
    ).stdout
    counters = {"requests": int(re.search(r"(\d+) requests in", output).group(1))}  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    counters.update(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=False) if errors
                    else {"connect": 0, "read": 0, "write": 0, "timeout": 0})
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    counters["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    return counters


@pytest.mark.live
@pytest.mark.parametrize("round_", [1, 2])
def test_sigterm_under_load_drains_like_a_pod(tmp_path: Path, served: list[Served], round_: int) -> None:
    # wrk keeps 16 keep-alive connections busy; SIGTERM comes a second into a 4 s run. The runtime
    # fails readiness (answers carry Connection: close), keeps accepting until clients stop
    # connecting, stops accepting, finishes what it accepted, and exits.
    if shutil.which("wrk") is None:
        missing("wrk not found (Debian package wrk)")
    body = tmp_path / "post.lua"
    body.write_text('wrk.method = "POST"\nwrk.body = \'{"echo": 1}\'\nwrk.headers["Content-Type"] = "application/json"\n')
    server = Served(_write(tmp_path, _api(pod="max_concurrency: 4\n    max_queue_length: 64")), _free_port())
    served.append(server)
    server.wait_banner()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        load = pool.submit(_wrk, server.port, 4, body)
        time.sleep(1)
        server.process.send_signal(signal.SIGTERM)
        counters = load.result(timeout=60)
    assert server.process.wait(timeout=60) == 0
    assert counters["requests"] > 100, counters
    assert counters["non_2xx"] == 0, counters
    # The listener closed only once wrk stopped opening connections: no socket error at all.
    assert counters["connect"] == counters["read"] == counters["write"] == counters["timeout"] == 0, counters


@pytest.mark.live
def test_a_port_in_use_is_an_error_and_nothing_starts(tmp_path: Path, served: list[Served]) -> None:
    first = Served(_write(tmp_path, _api()), _free_port())
    served.append(first)
    first.wait_banner()
    with pytest.raises(ServeError, match=rf"port {first.port} on 127.0.0.1 is in use .*nothing was started"):
        serve_api(_write(tmp_path, _api()), name=None, port=first.port)
    assert first.process.poll() is None
    assert first.stop() == 0
