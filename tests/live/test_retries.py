"""The sidecar's retry policy, run by the real Envoy: it retries once what never reached the app,
never what did (see ``envoy_config``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.live.procs import envoy_sidecar, free_port, slow_app

pytestmark = pytest.mark.live

# Headers with which a client asks Envoy to retry; the sidecar must not honour them.
CLIENT_RETRY_HEADERS = {"x-envoy-retry-on": "5xx,reset,connect-failure", "x-envoy-max-retries": "3"}


def _app_cluster_stats(admin_port: int) -> dict[str, int]:
    page = httpx.get(f"http://127.0.0.1:{admin_port}/stats",
                     params={"filter": r"^cluster\.app\.upstream_(rq_retry|cx_connect_fail|rq_total)$"}, timeout=5)
    return {name.removeprefix("cluster.app."): int(value)
            for name, value in (line.split(": ") for line in page.text.splitlines())}


def test_a_connection_the_app_does_not_accept_is_retried_once(tmp_path: Path) -> None:
    # Nothing listens on the app port: both connection attempts are refused.
    with envoy_sidecar(tmp_path, app_port=free_port(), max_concurrency=2, max_queue_length=2,
                       request_timeout_seconds=10) as sidecar:
        response = httpx.get(f"http://127.0.0.1:{sidecar.listen_port}/predict", timeout=10)
        stats = _app_cluster_stats(sidecar.admin_port)
    assert response.status_code == 503
    assert "retried" in response.text
    assert (stats["upstream_rq_retry"], stats["upstream_cx_connect_fail"]) == (1, 2)


def test_a_request_that_reached_the_app_is_never_retried(tmp_path: Path) -> None:
    with slow_app(tmp_path, 0.05) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=2, max_queue_length=2, request_timeout_seconds=10) as sidecar:
        listen = f"http://127.0.0.1:{sidecar.listen_port}"
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{listen}/predict").status_code == 200  # a kept-alive connection exists
            dropped = client.get(f"{listen}/predict?drop=1", headers=CLIENT_RETRY_HEADERS)
            served = client.get(f"{listen}/predict")
            app_stats = client.get(f"http://127.0.0.1:{app}/__stats").json()
        stats = _app_cluster_stats(sidecar.admin_port)
    # The app read the request and closed the connection: 503, and the app saw it once.
    assert dropped.status_code == 503
    assert (app_stats["dropped"], app_stats["served"]) == (1, 2)
    assert stats["upstream_rq_retry"] == 0
    assert served.status_code == 200


def test_a_large_upload_is_served_with_the_retry_policy(tmp_path: Path) -> None:
    # Envoy keeps a retriable request's body, up to its buffer limit (1 MiB by default); a larger
    # body must give up the retry, not the request.
    body = b"x" * (3 * 1024 * 1024)
    with slow_app(tmp_path, 0.05) as app, envoy_sidecar(
            tmp_path, app_port=app, max_concurrency=1, max_queue_length=1, request_timeout_seconds=10) as sidecar:
        response = httpx.post(f"http://127.0.0.1:{sidecar.listen_port}/predict", content=body, timeout=10)
    assert (response.status_code, response.text) == (200, "ok")
