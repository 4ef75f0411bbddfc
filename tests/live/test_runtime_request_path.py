"""The request path of a pod without the Envoy sidecar (a handler RealtimeAPI): the real runtime on
127.0.0.1, with the settings the renderer gives it (``render.realtime.direct_traffic``), put through
what tests/live/test_request_path.py, test_envoy_sidecar.py and test_drain.py put the sidecar through.

Shortened timings, said where used: the headers timeout (10 s in a pod) is 0.5 s, the keep-alive
(620 s) 1 s, the drain's deregistration wait (15 s) 1 s and the grace period 2 s; the mechanism is
the same, only the wait is shorter. Not here, because the pod has no such hop: the keep-alive race
between the sidecar and the app (in this pod the runtime's keep-alive, 620 s, is above the load
balancer's idle timeout, 300 s, and the KEDA interceptor's, 90 s, so they close idle connections
first; tests/render/test_realtime.py pins that), and streamed answers (a handler returns its whole
result).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cortex_iac.render.workload import runtime_liveness_probe
from cortex_iac.runtime_contract import READINESS_PATH
from tests.live.test_drain import CLIENTS, REQUESTS_PER_CLIENT, Outcomes, _client
from tests.live.test_request_path import _p99, _stalled_uploads, _timed_posts
from tests.serving.runtime import RuntimeProcess, start

pytestmark = pytest.mark.live

HANDLER = Path(__file__).with_name("runtime_handler.py")


@contextlib.contextmanager
def _runtime(delay: float = 0.0, **settings: Any) -> Iterator[RuntimeProcess]:
    """The runtime as a sidecar-less pod runs it: admission on, metrics on their own port."""
    values = {"max_concurrency": 1, "max_queue_length": 1, "request_timeout": 10, "metrics_port": 0,
              "handler_config": {"delay": delay}, **settings}
    server = start(HANDLER, **values)
    try:
        server.wait_listening()
        _wait_ready(server)
        yield server
    finally:
        server.kill()


def _wait_ready(server: RuntimeProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(server.url + READINESS_PATH, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError("not ready:\n" + "\n".join(server.lines))


def _stats(server: RuntimeProcess) -> dict[str, int]:
    return dict(httpx.get(server.url + "/", timeout=10).json())


def _metric(server: RuntimeProcess, line_start: str) -> float:
    for line in httpx.get(server.metrics_url, timeout=5).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_metric(server: RuntimeProcess, line_start: str, value: float, what: str, timeout: float = 5) -> None:
    """Poll the metric until it reads ``value``; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while _metric(server, line_start) != value:
        assert time.monotonic() < deadline, f"never counted: {what}"
        time.sleep(0.05)


def test_stalled_and_trickling_uploads_hold_no_slot() -> None:
    max_concurrency = 4
    with _runtime(0.05, max_concurrency=max_concurrency, max_queue_length=8, threads_per_process=4) as server:
        url = server.url + "/"
        statuses, unloaded = _timed_posts(url, 60)
        assert set(statuses) == {200}
        # 4 x max_concurrency clients stalled mid-body, plus 4 trickling a byte at a time.
        with _stalled_uploads(server.port or 0, stalled=4 * max_concurrency, trickling=4, seconds=30):
            time.sleep(0.5)
            statuses, loaded = _timed_posts(url, 60)
            in_flight_while_stalled = _metric(server, "cortex_requests_in_flight")
        stats = _stats(server)
    assert statuses == [200] * 60  # none refused because of them
    assert _p99(loaded) <= 2 * _p99(unloaded), (_p99(unloaded), _p99(loaded))
    # The stalled uploads never reached the handler, nor counted as in flight.
    assert stats["served"] == 120
    assert stats["max_active"] == 1
    assert in_flight_while_stalled == 0


def test_limits_concurrency_queues_then_refuses_with_retry_after_and_app_errors_do_not() -> None:
    with _runtime(1.0, max_concurrency=1, max_queue_length=1, retry_after=3) as server:
        url = server.url + "/"
        failed = httpx.post(url, json={"do": "raise"}, timeout=10)
        assert failed.status_code == 500 and "retry-after" not in failed.headers
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            slow = [pool.submit(httpx.post, url, json={"sleep": 1.0}, timeout=10) for _ in range(2)]
            time.sleep(0.4)
            in_flight = _metric(server, "cortex_requests_in_flight")
            refused = list(pool.map(lambda _: httpx.post(url, json={"sleep": 0}, timeout=10), range(4)))
            assert [f.result().status_code for f in slow] == [200, 200]
        assert in_flight == 2  # one running, one queued
        assert [r.status_code for r in refused] == [503] * 4
        assert all(r.headers["retry-after"] == "3" for r in refused)
        # Told apart from the app's own 5xx in the metrics.
        assert _metric(server, 'cortex_requests_rejected_total{reason="queue_full"}') == 4
        assert _metric(server, 'cortex_requests_total{method="POST",status="503"}') == 4
        assert _metric(server, 'cortex_requests_total{method="POST",status="500"}') == 1
        assert _stats(server)["max_active"] == 1


def test_request_timeout_counts_time_in_the_queue() -> None:
    with _runtime(1.3, max_concurrency=1, max_queue_length=1, request_timeout=2) as server:
        url = server.url + "/"
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            def timed(_: int) -> tuple[int, float]:
                started = time.monotonic()
                status = httpx.post(url, json={"sleep": 1.3}, timeout=10).status_code
                return status, time.monotonic() - started

            first = pool.submit(timed, 0)
            time.sleep(0.1)
            second = pool.submit(timed, 1)
            (status_a, took_a), (status_b, took_b) = first.result(), second.result()
        assert status_a == 200 and 1.2 < took_a < 1.9
        # Queued for 1.2 s, then 1.3 s of handling would pass the 2 s timeout: 504 at 2 s.
        assert status_b == 504 and 1.8 < took_b < 2.6, took_b
        # Its call still runs (a thread cannot be stopped): in flight until it ends, at about 2.6 s.
        assert _metric(server, "cortex_requests_in_flight") == 1
        _wait_metric(server, "cortex_requests_in_flight", 0, "the slot given back when the call ended")


def test_a_body_over_the_limit_is_refused_before_the_handler() -> None:
    with _runtime(max_body_bytes=64 * 1024) as server:
        url = server.url + "/"
        assert httpx.post(url, content=b"x" * (64 * 1024)).status_code == 200
        assert httpx.post(url, content=b"x" * (64 * 1024 + 1)).status_code == 413
        assert _stats(server)["served"] == 1


def _read_all(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    sock.settimeout(timeout)
    started, data = time.monotonic(), b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data, time.monotonic() - started


def test_headers_and_bodies_have_timeouts() -> None:
    # The keep-alive (620 s in a pod) is 1 s here: it also bounds a new connection that sends nothing.
    with _runtime(request_headers_timeout=0.5, keep_alive=1) as server:
        address = ("127.0.0.1", server.port or 0)
        with socket.create_connection(address) as sock:  # headers never finished
            sock.sendall(b"POST / HTTP/1.1\r\nhost: api\r\ncontent-le")
            data, took = _read_all(sock, 5)
        assert data.startswith(b"HTTP/1.1 408 ") and 0.4 < took < 2, (data, took)
        with socket.create_connection(address) as sock:  # a body that stops arriving
            sock.sendall(b"POST / HTTP/1.1\r\nhost: api\r\ncontent-length: 100\r\n\r\n0123")
            time.sleep(0.3)
            sock.sendall(b"4567")  # a byte resets the idle time
            data, took = _read_all(sock, 5)
        assert data.startswith(b"HTTP/1.1 408 ") and 0.4 < took < 2, (data, took)
        with socket.create_connection(address) as sock:  # a connection that never sends a byte
            data, took = _read_all(sock, 5)
        assert data == b"" and 0.9 < took < 2.5, took
        assert httpx.post(server.url + "/", json={"after": 1}, timeout=5).status_code == 200
        _wait_metric(server, 'cortex_requests_total{method="POST",status="408"}', 1, "the body timeout as 408")
        assert _stats(server)["served"] == 1


def test_connections_beyond_the_cap_are_closed_at_once() -> None:
    with _runtime(max_connections=3) as server:
        address = ("127.0.0.1", server.port or 0)
        held = [socket.create_connection(address) for _ in range(3)]
        try:
            time.sleep(0.2)
            with socket.create_connection(address) as extra:
                extra.sendall(b"GET / HTTP/1.1\r\nhost: api\r\n\r\n")
                data, took = _read_all(extra, 5)
            assert data == b"" and took < 1
            # The metrics port is not capped: Prometheus still scrapes, and the rendered liveness
            # probe (over loopback, to the metrics port) still passes, so a full pod is not restarted.
            assert httpx.get(server.metrics_url, timeout=5).status_code == 200
            probe = runtime_liveness_probe(server.metrics_port or 0)["exec"]["command"]
            assert subprocess.run([sys.executable, *probe[1:]], timeout=10, check=False).returncode == 0
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)
        assert httpx.post(server.url + "/", json={}, timeout=5).status_code == 200


def test_metrics_only_on_the_metrics_port_and_no_handler_there() -> None:
    with _runtime() as server:
        assert httpx.get(server.url + "/metrics", timeout=5).status_code == 404
        assert httpx.post(server.metrics_url.removesuffix("metrics"), json={}, timeout=5).status_code == 404
        metrics = httpx.get(server.metrics_url, timeout=5).text
        assert "cortex_requests_in_flight 0.0" in metrics
        # Counted from 0, as Envoy's counters are, for the methods the handler serves.
        assert 'cortex_requests_total{method="POST",status="503"} 0.0' in metrics
        assert 'cortex_requests_total{method="GET",status="503"} 0.0' in metrics
        assert 'cortex_requests_total{method="HEAD",status="503"} 0.0' in metrics
        assert 'cortex_requests_rejected_total{reason="queue_full"} 0.0' in metrics
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        # No sidecar gives requests an id: the runtime does, in its answer and its access line.
        answer = httpx.post(server.url + "/", json={}, timeout=5)
        request_id = answer.headers["x-request-id"]
        assert len(request_id) == 32
        following = httpx.post(server.url + "/", json={}, timeout=5).headers["x-request-id"]
        assert following != request_id and following[:16] == request_id[:16]  # the process's prefix, then a count
        assert server.wait_records(lambda r: r.get("request_id") == request_id)
        assert httpx.post(server.url + "/", json={}, headers={"x-request-id": "abc-1"}, timeout=5
                          ).headers.get("x-request-id") is None  # a client's own id is kept, not replaced
        assert server.wait_records(lambda r: r.get("request_id") == "abc-1")


def test_a_port_in_use_exits_2_naming_it() -> None:
    with _runtime() as first:
        second = start(HANDLER, port=first.port, metrics_port=0)
        try:
            assert second.wait_exit(20) == 2
        finally:
            second.kill()
        assert any(f"127.0.0.1:{first.port} (Address already in use); nothing was started" in line
                   for line in second.lines), second.lines


def test_shutdown_mid_load_fails_no_accepted_request() -> None:
    # As tests/live/test_drain.py does to the sidecar: SIGTERM mid-load (the kubelet's, at once: the
    # runtime has no preStop). Readiness fails, new connections are accepted for drain_seconds (1 s
    # here, 15 s in a pod), then the listener closes and what was accepted finishes.
    outcomes = Outcomes()
    with _runtime(max_concurrency=2, max_queue_length=3, request_timeout=3, drain_seconds=1, grace_period=10,
                  threads_per_process=2, handler_config={"get_delay": 0.05}) as server:
        clients = [threading.Thread(target=_client, args=(server.url + "/", outcomes)) for _ in range(CLIENTS)]
        for thread in clients:
            thread.start()
        try:
            time.sleep(1.0)
            stopped = time.monotonic()
            server.terminate()
            time.sleep(0.3)
            readiness = httpx.get(server.url + READINESS_PATH, timeout=5)
            assert server.wait_exit(15) == 0
            took = time.monotonic() - stopped
        finally:
            for thread in clients:
                thread.join(30)
    assert not any(thread.is_alive() for thread in clients)
    assert readiness.status_code == 503 and readiness.headers["connection"] == "close"
    assert 1.0 <= took < 3 + 1 + 2
    answered = len(outcomes.ok_at)
    assert outcomes.other_status == []
    assert answered + outcomes.refused + len(outcomes.errors) == CLIENTS * REQUESTS_PER_CLIENT
    # Every request a client sent on a connection the runtime read was answered 200; the errors are
    # connections closed before a request was read (refused, or reset at the listener's close).
    assert all(isinstance(e, httpx.ReadError | httpx.RemoteProtocolError) for e in outcomes.errors), outcomes.errors
    # Requests were served after SIGTERM (the deregistration time), and later ones were refused.
    assert sum(1 for t in outcomes.ok_at if t > stopped + 0.5) > 0, (took, answered, outcomes.refused)
    assert outcomes.refused > 0


def test_a_call_outliving_the_timeout_keeps_its_slot_until_it_ends() -> None:
    # A handler thread cannot be stopped: the 504 goes out at the timeout, but the slot stays taken
    # (and counted in flight) until the call ends, so the next request waits in the queue instead of
    # queueing, uncounted, behind it in the thread pool.
    with _runtime(max_concurrency=1, max_queue_length=4, request_timeout=1) as server:
        url = server.url + "/"
        started = time.monotonic()
        assert httpx.post(url, json={"sleep": 1.6}, timeout=10).status_code == 504
        assert time.monotonic() - started < 1.4
        assert _metric(server, "cortex_requests_in_flight") == 1
        follow = httpx.post(url, json={"sleep": 0}, timeout=10)
        assert follow.status_code == 200 and time.monotonic() - started >= 1.5
        assert _metric(server, "cortex_requests_in_flight") == 0
        assert _stats(server)["served"] == 2


def test_a_queued_request_whose_client_left_is_not_run() -> None:
    with _runtime(max_concurrency=1, max_queue_length=2) as server:
        url = server.url + "/"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, url, json={"sleep": 1.0}, timeout=10)
            time.sleep(0.2)
            with socket.create_connection(("127.0.0.1", server.port or 0)) as sock:
                sock.sendall(b'POST / HTTP/1.1\r\nhost: api\r\ncontent-type: application/json\r\n'
                             b'content-length: 2\r\n\r\n{}')
                time.sleep(0.3)  # queued; then the client goes away
            assert first.result().status_code == 200
        _wait_metric(server, 'cortex_requests_total{method="POST",status="499"}', 1, "the abandoned request as 499")
        assert _stats(server)["served"] == 1


def test_a_refused_body_closes_the_connection() -> None:
    with _runtime(max_body_bytes=1000) as server, socket.create_connection(("127.0.0.1", server.port or 0)) as sock:
        # The body is refused unread: whatever follows on the connection is not a request.
        sock.sendall(b"POST / HTTP/1.1\r\nhost: api\r\ncontent-length: 5000\r\n\r\n")
        data, took = _read_all(sock, 5)
    assert data.startswith(b"HTTP/1.1 413 ") and b"connection: close" in data.lower() and took < 2


def test_a_pipelined_request_is_not_timed_out_while_the_first_is_answered() -> None:
    with _runtime(request_headers_timeout=0.5, max_queue_length=2) as server, \
            socket.create_connection(("127.0.0.1", server.port or 0)) as sock:
        body = b'{"sleep": 0, "pad": "' + b"x" * 300_000 + b'"}'
        sock.sendall(b'POST / HTTP/1.1\r\nhost: api\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n'
                     b'{"sleep": 1.5}'
                     b"POST / HTTP/1.1\r\nhost: api\r\ncontent-type: application/json\r\ncontent-length: "
                     + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        data, _ = _read_all(sock, 10)
    assert data.count(b"HTTP/1.1 200 ") == 2 and b"408" not in data.split(b"\r\n", 1)[0], data[:300]


def test_a_protocol_upgrade_is_refused() -> None:
    with _runtime() as server, socket.create_connection(("127.0.0.1", server.port or 0)) as sock:
        sock.sendall(b'POST / HTTP/1.1\r\nhost: api\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\n'
                     b'http2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\ncontent-type: application/json\r\n'
                     b'content-length: 2\r\n\r\n{}')
        data, _ = _read_all(sock, 5)
    assert data.startswith(b"HTTP/1.1 400 "), data


def test_a_request_cut_at_the_end_of_the_grace_period_is_counted() -> None:
    with _runtime(grace_period=2) as server:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            cut = pool.submit(httpx.post, server.url + "/", json={"sleep": 4}, timeout=10)
            time.sleep(0.3)
            server.terminate()
            assert server.wait_exit(10) == 0
            with contextlib.suppress(httpx.HTTPError):
                assert cut.result().status_code >= 500
    assert server.wait_records(lambda r: r.get("logger") == "cortex.access" and r.get("status") == 503)
