"""The runtime as a real process on 127.0.0.1: bad inputs, faults, batching, drain on SIGTERM, iris."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.runtime import RuntimeProcess, start

pytestmark = pytest.mark.live

JSON = {"content-type": "application/json"}
REPO = Path(__file__).resolve().parents[2]


def _post(url: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=content, headers=headers, timeout=10)


# (case, body, headers, status, what the JSON answer must contain)
BAD_INPUTS = [
    ("malformed JSON", b'{"a": ', JSON, 400, {"error": "malformed JSON body: Expecting value: line 1 column 7 (char 6)"}),
    ("not UTF-8", b'{"a": "\xff"}', JSON, 400, {"error": "malformed JSON body: not UTF-8 (invalid start byte at byte 7)"}),
    ("empty JSON body", b"", JSON, 400, {"error": "empty body: Content-Type is application/json but there is no JSON"}),
    ("wrong content type: bytes reach the handler", b'{"a": 1}', {"content-type": "text/plain"}, 200,
     {"type": "bytes", "length": 8}),
    ("no content type, empty body", b"", {}, 200, {"type": "bytes", "length": 0}),
    ("oversize body", b"x" * 2049, {"content-type": "application/octet-stream"}, 413,
     {"error": "request body of 2049 bytes is over the limit of 2048 bytes"}),
    ("handler raising", b'{"do": "raise"}', JSON, 500, {"error": "the handler raised an exception; see the server log"}),
    ("unserialisable result", b'{"do": "unserialisable"}', JSON, 500, {}),
    ("NaN in the result", b'{"do": "nan"}', JSON, 500, {}),
]


@pytest.fixture(scope="module")
def faults() -> Iterator[RuntimeProcess]:
    """One server for every fault case: each case also checks that the faults before it did no harm."""
    server = start("faults.py", max_body_bytes=2048, handler_config={"greeting": "hi from config"})
    try:
        server.wait_ready()
        yield server
    finally:
        server.kill()


@pytest.mark.parametrize(("case", "body", "headers", "status", "expected"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_its_status_and_the_server_keeps_serving(
    faults: RuntimeProcess, case: str, body: bytes, headers: dict[str, str], status: int, expected: dict[str, Any]
) -> None:
    response = _post(faults.url + "/", body, headers)
    assert response.status_code == status, response.text
    answer = response.json()
    assert expected.items() <= answer.items()
    if status == 500:
        assert "secret detail" not in response.text and "Traceback" not in response.text
        assert len(answer["error_id"]) == 16
    after = _post(faults.url + "/", b'{"ok": 1}', JSON)
    assert after.status_code == 200 and after.json() == {"type": "dict", "echo": {"ok": 1}}


def test_unserialisable_result_says_why(faults: RuntimeProcess) -> None:
    answer = _post(faults.url + "/", b'{"do": "unserialisable"}', JSON).json()
    assert answer["error"].startswith("the handler's result cannot be serialised (Object of type set is not JSON")
    assert answer["error"].endswith("return a dict, list, number, str, bytes or a starlette Response")


def test_chunked_oversize_body_is_refused(faults: RuntimeProcess) -> None:
    # No Content-Length: the limit is enforced while reading.
    chunks = iter([b"x" * 1500, b"x" * 1500])
    response = httpx.post(faults.url + "/", content=chunks, headers={"content-type": "text/plain"}, timeout=10)
    assert response.status_code == 413
    assert response.json() == {"error": "request body is over the limit of 2048 bytes"}


def test_handler_traceback_is_logged_under_the_error_id(faults: RuntimeProcess) -> None:
    error_id = _post(faults.url + "/", b'{"do": "raise"}', JSON).json()["error_id"]
    # The traceback line and the (buffered) access line.
    errors = faults.wait_records(lambda r: r.get("error_id") == error_id, count=2)
    logged = {r["logger"]: r for r in errors}
    assert "the model exploded (secret detail)" in logged["cortex.runtime"]["traceback"]
    assert logged["cortex.access"]["status"] == 500


def test_results_by_type(faults: RuntimeProcess) -> None:
    text = _post(faults.url + "/", b'{"do": "text"}', JSON)
    assert (text.status_code, text.headers["content-type"], text.text) == (200, "text/plain; charset=utf-8", "plain text")
    raw = _post(faults.url + "/", b'{"do": "bytes"}', JSON)
    assert (raw.headers["content-type"], raw.content) == ("application/octet-stream", b"\x00\x01")
    number = _post(faults.url + "/", b"[1, 2.5]", JSON)
    assert (number.headers["content-type"], number.json()) == ("application/json", {"type": "list", "echo": [1, 2.5]})
    get = httpx.get(faults.url + "/", timeout=5)
    assert (get.status_code, get.text) == (200, "hi from config")


def test_probes_metrics_and_access_log(runtime: Callable[..., RuntimeProcess]) -> None:
    faults = runtime("faults.py")
    faults.wait_ready()
    assert httpx.get(faults.url + "/healthz").json() == {"status": "live"}
    assert httpx.get(faults.url + "/readyz").json() == {"status": "ready"}
    for body in (b'{"x": 1}', b'{"x": 2}', b'{"a": '):
        _post(faults.url + "/", body, JSON)
    metrics = httpx.get(faults.url + "/metrics").text
    assert 'cortex_requests_total{method="POST",status="200"} 2.0' in metrics
    assert 'cortex_requests_total{method="POST",status="400"} 1.0' in metrics
    assert "cortex_request_duration_seconds_count 3.0" in metrics
    assert "cortex_requests_in_flight 0.0" in metrics
    access = faults.wait_records(lambda r: r["logger"] == "cortex.access", count=3)
    assert [(r["method"], r["path"], r["status"]) for r in access] == [("POST", "/", 200)] * 2 + [("POST", "/", 400)]
    assert all(r["latency_ms"] > 0 for r in access)


def test_failing_init_exits_non_zero_and_is_never_ready(runtime: Callable[..., RuntimeProcess]) -> None:
    server = runtime("failing_init.py")
    code = server.wait_exit(timeout=20)
    assert code == 1
    records = server.records()
    failure = next(r for r in records if r["level"] == "error")
    assert failure["message"] == (
        "the handler failed to load, exiting: FileNotFoundError: model.pkl is missing"
    )
    assert "Traceback" in failure["traceback"]
    assert not any(r.get("message") == "handler loaded; ready" for r in records)


def test_missing_handler_file_exits_non_zero(runtime: Callable[..., RuntimeProcess], tmp_path: Path) -> None:
    server = runtime(str(tmp_path / "nope.py"))
    assert server.wait_exit(timeout=20) == 1
    assert any("does not exist" in r["message"] for r in server.records() if r["level"] == "error")


def test_bad_setting_exits_2_naming_the_variable(runtime: Callable[..., RuntimeProcess]) -> None:
    server = runtime("faults.py", threads_per_process="many")
    assert server.wait_exit(timeout=20) == 2
    assert server.lines == ["cortex serving: Config 'CORTEX_THREADS_PER_PROCESS' has value 'many'. Not a valid int."]


def test_not_ready_while_loading_and_sigterm_does_not_wait_for_the_load(
    runtime: Callable[..., RuntimeProcess],
) -> None:
    server = runtime("slow_init.py", grace_period=5)
    server.wait_listening()
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    ready = httpx.get(server.url + "/readyz", timeout=5)
    assert (ready.status_code, ready.json()) == (503, {"status": "loading"})
    busy = httpx.post(server.url + "/", json={"x": 1}, timeout=5)
    assert (busy.status_code, busy.json()) == (503, {"error": "not ready: the handler is still loading"})
    signalled = time.monotonic()
    server.terminate()
    assert server.wait_exit(timeout=10) == 0
    assert time.monotonic() - signalled < 5


def test_a_client_leaving_mid_body_is_counted_as_499(runtime: Callable[..., RuntimeProcess]) -> None:
    server = runtime("faults.py")
    server.wait_ready()
    assert server.port is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if 'cortex_requests_total{method="POST",status="499"} 1.0' in httpx.get(server.url + "/metrics").text:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("no 499 counted")
    assert httpx.post(server.url + "/", json={"after": 1}, timeout=5).status_code == 200


def test_head_is_answered_like_get(faults: RuntimeProcess) -> None:
    response = httpx.head(faults.url + "/", timeout=5)
    assert (response.status_code, response.content) == (200, b"")


def test_batching_gives_each_caller_its_own_result(runtime: Callable[..., RuntimeProcess]) -> None:
    server = runtime("batch_echo.py", max_batch_size=8, batch_interval=0.01, handler_config={"cost_seconds": 0.02})
    server.wait_ready()
    with httpx.Client(base_url=server.url, timeout=10, limits=httpx.Limits(max_connections=32)) as client:
        def call(i: int) -> tuple[int, Any]:
            response = client.post("/", json={"i": i})
            return response.status_code, response.json()

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            results = list(pool.map(call, range(200)))
    assert [status for status, _ in results] == [200] * 200
    assert [answer["echo"] for _, answer in results] == [{"i": i} for i in range(200)]
    sizes = [answer["batch_size"] for _, answer in results]
    assert max(sizes) > 1 and all(1 <= size <= 8 for size in sizes)
    metrics = httpx.get(server.url + "/metrics").text
    assert "cortex_batch_size_count" in metrics


def test_batch_with_wrong_result_count_fails_every_caller_clearly(runtime: Callable[..., RuntimeProcess]) -> None:
    server = runtime("batch_echo.py", max_batch_size=4, batch_interval=0.2)
    server.wait_ready()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        short, other = pool.map(lambda p: httpx.post(server.url + "/", json=p, timeout=10), [{"do": "short"}, {"x": 1}])
    for response in (short, other):
        assert response.status_code == 500
        assert response.json()["error"] == (
            "with batching, handle_post must return a list with one result per payload: got 1 results for a batch of 2"
        )
    assert httpx.post(server.url + "/", json={"x": 2}, timeout=10).json() == {"echo": {"x": 2}, "batch_size": 1}


def test_sigterm_fails_readiness_and_finishes_the_request_in_flight(runtime: Callable[..., RuntimeProcess]) -> None:
    server = runtime("faults.py", grace_period=10)
    server.wait_ready()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(_post, server.url + "/", b'{"do": "sleep", "seconds": 1.5}', JSON)
        time.sleep(0.3)
        signalled = time.monotonic()
        server.terminate()
        time.sleep(0.3)
        # Readiness fails at once: the listener is closed (a probe's connection is refused).
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/readyz", timeout=1)
        assert slow.result(timeout=10).json() == {"slept": 1.5}
    assert server.wait_exit(timeout=10) == 0
    assert time.monotonic() - signalled < 10
    assert any(r["message"].startswith("draining") for r in server.records())


def test_a_call_outliving_the_grace_period_does_not_keep_the_process(
    runtime: Callable[..., RuntimeProcess],
) -> None:
    server = runtime("faults.py", grace_period=2)
    server.wait_ready()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(_post, server.url + "/", b'{"do": "sleep", "seconds": 30}', JSON)
        time.sleep(0.3)
        signalled = time.monotonic()
        server.terminate()
        server.wait_exit(timeout=10)
        assert time.monotonic() - signalled < 2.5
        # Cut off (uvicorn answers a cancelled request with 500); the kubelet would have killed the pod.
        assert stuck.result(timeout=10).status_code == 500


def test_load_with_sigterm_loses_no_accepted_request(runtime: Callable[..., RuntimeProcess], tmp_path: Path) -> None:
    record = tmp_path / "accepted.txt"
    grace = 5.0
    server = runtime("slow_recorder.py", grace_period=grace, handler_config={"record_file": str(record)})
    server.wait_ready()
    answered: dict[int, int] = {}
    refused = 0
    stop = threading.Event()

    def client(worker: int) -> None:
        nonlocal refused
        with httpx.Client(base_url=server.url, timeout=10) as session:
            for i in range(1000):
                if stop.is_set():
                    return
                request_id = worker * 1000 + i
                try:
                    response = session.post("/", json={"id": request_id, "seconds": 0.05})
                except httpx.TransportError:
                    refused += 1  # not accepted: the listener closed, or the connection was being closed
                    time.sleep(0.01)
                    continue
                answered[request_id] = response.status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        workers = [pool.submit(client, w) for w in range(16)]
        deadline = time.monotonic() + 20
        while len(answered) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        signalled = time.monotonic()
        server.terminate()
        code = server.wait_exit(timeout=grace + 5)
        exited = time.monotonic() - signalled
        time.sleep(0.2)  # let clients run into the closed port
        stop.set()
        for worker in workers:
            worker.result(timeout=10)
    accepted = {int(line) for line in record.read_text().split()}
    assert code == 0
    assert exited < grace
    assert len(accepted) >= 100 and refused > 0  # the load really spanned the signal
    assert {request_id: answered.get(request_id) for request_id in accepted} == dict.fromkeys(accepted, 200)


def test_iris_contract_through_the_real_server(runtime: Callable[..., RuntimeProcess]) -> None:
    server = runtime(str(REPO / "examples" / "iris-classifier" / "handler.py"))
    server.wait_ready(timeout=60)
    flower = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    response = httpx.post(server.url + "/", json=flower, timeout=10)
    assert response.status_code == 200
    assert "setosa" in json.dumps(response.json())
    assert httpx.post(server.url + "/", json={"petal_width": "wide"}, timeout=10).status_code == 400


HOOKS = '''
import json, os


class Handler:
    def __init__(self, config):
        self.out = config["out"]

    def handle_post(self, payload):
        return {"ok": True}

    def on_job_complete(self, payload):
        if payload.get("status") == "raise":
            raise RuntimeError("the hook failed")
        with open(self.out, "a") as f:
            f.write(json.dumps(payload) + "\\n")
'''

NO_ARGUMENT_HOOK = '''
class Handler:
    def __init__(self, config):
        self.out = config["out"]

    def handle_post(self, payload):
        return {"ok": True}

    async def on_job_complete(self):
        open(self.out, "a").write("called\\n")
'''

NO_HOOK = '''
class Handler:
    def __init__(self, config):
        pass

    def handle_post(self, payload):
        return {"ok": True}
'''


def _hook_server(tmp_path: Path, source: str, **settings: Any) -> tuple[RuntimeProcess, Path]:
    handler = tmp_path / f"hook{len(list(tmp_path.iterdir()))}.py"
    handler.write_text(source)
    out = tmp_path / f"{handler.stem}.out"
    server = start(handler, handler_config={"out": str(out)}, **settings)
    server.wait_ready()
    return server, out


def test_on_job_complete_is_served_only_for_batch_apis_and_only_when_the_handler_has_it(tmp_path: Path) -> None:
    body = {"message": "job_complete", "job_id": "0123456789abcdef", "status": "succeeded", "metrics": {"succeeded": 3}}
    headers = {**JSON, "x-cortex-job-id": "0123456789abcdef"}
    server, out = _hook_server(tmp_path, HOOKS, on_job_complete="true")
    try:
        response = _post(server.url + "/on-job-complete", json.dumps(body).encode(), headers)
        assert (response.status_code, response.json()) == (200, {})
        assert [json.loads(line) for line in out.read_text().splitlines()] == [body]
        failing = _post(server.url + "/on-job-complete", json.dumps({**body, "status": "raise"}).encode(), headers)
        assert failing.status_code == 500 and failing.json()["error_id"]
        assert server.wait_records(
            lambda r: r.get("message") == "on_job_complete raised" and "the hook failed" in r.get("traceback", ""))
        assert _post(server.url + "/", b"{}", JSON).status_code == 200  # the API itself is unaffected
    finally:
        server.kill()
    # Cortex's own signature, on_job_complete(self), async here.
    server, out = _hook_server(tmp_path, NO_ARGUMENT_HOOK, on_job_complete="true")
    try:
        assert _post(server.url + "/on-job-complete", json.dumps(body).encode(), headers).status_code == 200
        assert out.read_text() == "called\n"
    finally:
        server.kill()
    # No hook in the handler: 404, which the worker ignores (Cortex too).
    server, _ = _hook_server(tmp_path, NO_HOOK, on_job_complete="true")
    try:
        response = _post(server.url + "/on-job-complete", json.dumps(body).encode(), headers)
        assert (response.status_code, response.json()) == (404, {"error": "this handler has no on_job_complete"})
    finally:
        server.kill()
    # Not a BatchAPI (the setting is off): the path does not exist, whatever the handler defines.
    server, out = _hook_server(tmp_path, HOOKS)
    try:
        assert _post(server.url + "/on-job-complete", json.dumps(body).encode(), headers).status_code == 404
        assert not out.exists()
    finally:
        server.kill()
