"""The request path survives hostile and unlucky clients: the rendered sidecar config, run by the real
Envoy on 127.0.0.1 in front of small local apps.

- Stalled and trickling uploads hold no app slot: bodies are buffered whole before a request may
  take one, so a normal client's latency does not move.
- Streamed answers still pass as they come (only requests are buffered).
- A queue-full 503 says when to come back (Retry-After); the app's own errors do not.
- A body over the limit is refused with 413 before the app sees it.
- No keep-alive race: Envoy closes idle app connections before the app does.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import random
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live.procs import envoy_sidecar, free_port, running, slow_app

pytestmark = pytest.mark.live

KEEPALIVE_APP = Path(__file__).with_name("keepalive_app.py")


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _timed_posts(url: str, count: int) -> tuple[list[int], list[float]]:
    statuses, latencies = [], []
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            start = time.monotonic()
            statuses.append(client.post(url, content=b"x" * 100).status_code)
            latencies.append(time.monotonic() - start)
    return statuses, latencies


@contextlib.contextmanager
def _stalled_uploads(port: int, stalled: int, trickling: int, seconds: float) -> Iterator[None]:
    """``stalled`` clients that send headers and 10 of 100,000 body bytes, then nothing; and
    ``trickling`` ones that send one byte every 0.2 s. All stop when the block ends (or after
    ``seconds``)."""
    head = b"POST /predict HTTP/1.1\r\nhost: api\r\ncontent-length: 100000\r\n\r\n"
    sockets = []
    for _ in range(stalled + trickling):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(head + b"0123456789")
        sockets.append(sock)
    done = threading.Event()

    def trickle(sock: socket.socket) -> None:
        deadline = time.monotonic() + seconds
        while not done.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                sock.sendall(b"x")
            done.wait(0.2)

    threads = [threading.Thread(target=trickle, args=(s,), daemon=True) for s in sockets[stalled:]]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        done.set()
        for thread in threads:
            thread.join(5)
        for sock in sockets:
            sock.close()


def test_stalled_and_trickling_uploads_hold_no_app_slot(tmp_path: Path) -> None:
    max_concurrency = 4
    with slow_app(tmp_path, 0.05) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=max_concurrency, max_queue_length=8,
            request_timeout_seconds=10) as sidecar:
        url = f"http://127.0.0.1:{sidecar.listen_port}/predict"
        statuses, unloaded = _timed_posts(url, 60)
        assert set(statuses) == {200}
        # 4 x max_concurrency clients stalled mid-body, plus 4 trickling a byte at a time.
        with _stalled_uploads(sidecar.listen_port, stalled=4 * max_concurrency, trickling=4, seconds=30):
            time.sleep(0.5)
            statuses, loaded = _timed_posts(url, 60)
        stats = httpx.get(f"http://127.0.0.1:{app}/__stats").json()
    assert statuses == [200] * 60  # none refused because of them
    assert _p99(loaded) <= 2 * _p99(unloaded), (_p99(unloaded), _p99(loaded))
    # The stalled uploads never reached the app: it served exactly the normal requests.
    assert stats["served"] == 120
    assert stats["max_active"] == 1


def test_streamed_answers_are_not_buffered(tmp_path: Path) -> None:
    with slow_app(tmp_path, 0.0) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=1, max_queue_length=1, request_timeout_seconds=10) as sidecar:
        start = time.monotonic()
        arrivals = []
        with httpx.stream("GET", f"http://127.0.0.1:{sidecar.listen_port}/events?stream=3&sleep=0.6",
                          timeout=10) as response:
            assert response.status_code == 200
            for _ in response.iter_raw():
                arrivals.append(time.monotonic() - start)
    assert arrivals[0] < 0.5  # the first event came before the app sent the second
    assert arrivals[-1] >= 1.2


def test_queue_full_answers_carry_retry_after_and_app_errors_do_not(tmp_path: Path) -> None:
    with slow_app(tmp_path, 1.0) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=1, max_queue_length=1, request_timeout_seconds=10,
            retry_after_seconds=3) as sidecar:
        url = f"http://127.0.0.1:{sidecar.listen_port}/predict"
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{url}?sleep=0&status=503").headers.get("retry-after") is None
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                responses = list(pool.map(lambda _: httpx.get(url, timeout=10), range(6)))
    refused = [r for r in responses if r.status_code == 503]
    assert refused and all(r.headers["retry-after"] == "3" for r in refused)
    assert all(r.headers.get("retry-after") is None for r in responses if r.status_code == 200)


def test_a_body_over_the_limit_is_refused_before_the_app(tmp_path: Path) -> None:
    with slow_app(tmp_path, 0.0) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=1, max_queue_length=1, request_timeout_seconds=10,
            max_request_bytes=64 * 1024) as sidecar:
        url = f"http://127.0.0.1:{sidecar.listen_port}/predict"
        assert httpx.post(url, content=b"x" * (64 * 1024)).status_code == 200
        assert httpx.post(url, content=b"x" * (64 * 1024 + 1)).status_code == 413
        assert httpx.get(f"http://127.0.0.1:{app}/__stats").json()["served"] == 1


def _waves(port: int, concurrency: int, waves: int, gap: float) -> list[int]:
    """``waves`` rounds of ``concurrency`` simultaneous requests, each round ``gap`` ± 5 ms after the
    last answer of the one before: every app connection Envoy holds is then idle for about ``gap``."""
    statuses: list[int] = []
    url = f"http://127.0.0.1:{port}/predict"
    limits = httpx.Limits(max_keepalive_connections=concurrency, max_connections=concurrency)
    with httpx.Client(timeout=10, limits=limits) as client, \
            concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for _ in range(waves):
            statuses += [r.status_code for r in pool.map(lambda _: client.get(url), range(concurrency))]
            time.sleep(gap + random.uniform(-0.005, 0.005))
    return statuses


# The keep-alive edges of gunicorn (2 s) and uvicorn (5 s) against Envoy's 1 s idle timeout, scaled
# by 1/20 so that 1,000 requests at the edge fit in CI: the app closes idle connections after
# 100 ms or 250 ms, Envoy after 50 ms, and every request is sent within ±5 ms of the app's edge.
# Four Envoy + app pairs run side by side, 250 requests each.
@pytest.mark.parametrize("app_keepalive", [0.1, 0.25], ids=["gunicorn-2s-scaled", "uvicorn-5s-scaled"])
@pytest.mark.parametrize("max_concurrency", [1, 8])
def test_no_keepalive_race_at_the_apps_edge(tmp_path: Path, app_keepalive: float, max_concurrency: int) -> None:
    pairs, per_pair = 4, 250
    with contextlib.ExitStack() as stack:
        ports = []
        for index in range(pairs):
            app = free_port()
            stack.enter_context(running([sys.executable, str(KEEPALIVE_APP), str(app), str(app_keepalive)],
                                        ports=[app], log=tmp_path / f"app-{index}.log"))
            sidecar = stack.enter_context(envoy_sidecar(
                tmp_path, app_port=app, max_concurrency=max_concurrency, max_queue_length=max_concurrency,
                request_timeout_seconds=10, upstream_idle_timeout_seconds=0.05))
            ports.append(sidecar.listen_port)
        with concurrent.futures.ThreadPoolExecutor(pairs) as pool:
            results = list(pool.map(
                lambda port: _waves(port, max_concurrency, per_pair // max_concurrency + 1, app_keepalive), ports))
    statuses = [status for result in results for status in result]
    assert len(statuses) >= 1000
    assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}
