"""The AsyncAPI contract through the real gateway and worker processes, against a real moto server.

Timings are shortened for the tests (and only timings): a 4 s visibility timeout instead of 60 s,
the dead-letter queue polled every 0.5 s instead of 60 s, long polls of 1 s instead of 20 s (a
worker's shutdown waits for the poll under way). What is asserted is the behaviour.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cortex_iac.queue import contract
from tests.live.async_harness import async_api, wait_for
from tests.live.moto_server import MotoServer, moto_server

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


def test_submit_queue_progress_complete(tmp_path: Path, moto: MotoServer) -> None:
    with async_api(tmp_path, moto, "contract") as api, httpx.Client(timeout=10) as client:
        api.start_app()
        api.start_gateway(endpoint="/contract")
        request_id = api.submit(client, {"sleep": 3}, headers={"X-Custom": "kept"})
        # No worker yet: the request waits in the queue.
        assert api.status(client, request_id) == {"id": request_id, "status": "in_queue"}
        api.start_worker()
        api.wait_status(client, request_id, "in_progress")
        done = api.wait_status(client, request_id, "completed")
        assert set(done) == {"id", "status", "result", "timestamp"}
        assert done["result"] == {"id": request_id, "bytes": len(json.dumps({"sleep": 3})), "header": "kept",
                                  "content_type": "application/json"}
        assert done["timestamp"].endswith("Z")
        # The un-rewritten path (CORTEX_ENDPOINT) answers the same.
        assert client.get(f"{api.url}/contract/{request_id}").json() == done
        # The message is gone, the inputs deleted, the outcome kept.
        wait_for(lambda: api.queue_counts(api.res.queue_url) == (0, 0), 10, "an empty queue")
        keys = {key.rsplit(request_id + "/", 1)[1] for key in api.objects()}
        assert keys == {"status/in_queue", "status/in_progress", "status/completed", "result.json"}
        assert api.app_calls("done") == [request_id]
        # Metrics are on their own port, not on the one the load balancer reaches.
        assert client.get(api.url + "/metrics").status_code == 404
        metrics = client.get(f"http://127.0.0.1:{api.gateway_metrics_port}/metrics").text
        assert 'cortex_async_gateway_requests_total{api_name="contract",code="200",method="POST"} 1.0' in metrics


def test_results_failures_unknown_ids_and_oversize_bodies(tmp_path: Path, moto: MotoServer) -> None:
    limit = 12 * 1024 * 1024  # above one upload part (8 MiB), so the streamed case aborts a multipart upload
    with async_api(tmp_path, moto, "shapes") as api, httpx.Client(timeout=30) as client:
        api.start_app()
        api.start_gateway(max_body_bytes=limit)
        api.start_worker(max_concurrency=4, request_timeout=4)
        # Any JSON result is returned (Cortex answered 500 for a list or a scalar).
        ids = {api.submit(client, {"result": value}): value for value in ([1, "two", None], 42, "text")}
        # Failures carry their reason: the container's status and the start of its answer, a timeout,
        # an answer that is not JSON.
        error = api.submit(client, {"status": 500, "result": {"error": "model exploded"}})
        slow = api.submit(client, {"sleep": 30})
        garbage = api.submit(client, {"raw": "<html>oops</html>"})
        for request_id, value in ids.items():
            assert api.wait_status(client, request_id, "completed")["result"] == value
        assert api.wait_status(client, error, "failed") == {
            "id": error, "status": "failed", "reason": 'the container answered 500: {"error": "model exploded"}'}
        assert "did not answer within 4 s" in api.wait_status(client, slow, "failed")["reason"]
        assert "not JSON: <html>oops</html>" in api.wait_status(client, garbage, "failed")["reason"]
        # Nothing left hanging: every message deleted once its outcome was stored.
        wait_for(lambda: api.queue_counts(api.res.queue_url) == (0, 0), 10, "an empty queue")
        for unknown in ("00000000-0000-4000-8000-000000000000", "not-an-id", "..%2F..%2Fetc"):
            response = client.get(f"{api.url}/{unknown}")
            assert response.status_code == 404
            assert "not found" in response.json()["error"]

        # 413 before anything is stored: by Content-Length, and counted while streaming (no length).
        before = set(api.objects())
        declared = client.post(api.url + "/", content=b"x" * (limit + 1))
        assert declared.status_code == 413
        assert "limit" in declared.json()["error"]

        def chunks() -> Iterator[bytes]:
            for _ in range(17):
                yield b"y" * (1024 * 1024)

        assert client.post(api.url + "/", content=chunks()).status_code == 413
        s3 = moto.client("s3")
        assert set(api.objects()) == before
        assert s3.list_multipart_uploads(Bucket=api.res.bucket).get("Uploads", []) == []
        assert api.queue_counts(api.res.queue_url) == (0, 0)
        # At the limit exactly it is accepted, stored whole and streamed whole to the container.
        big = client.post(api.url + "/", content=b"z" * limit).json()["id"]
        assert api.wait_status(client, big, "completed")["result"]["bytes"] == limit


def test_worker_waits_for_the_container_to_be_ready(tmp_path: Path, moto: MotoServer) -> None:
    with async_api(tmp_path, moto, "notready") as api, httpx.Client(timeout=10) as client:
        api.start_gateway()
        proc, log_name = api.start_worker(readiness_probe=contract.ReadinessProbe("http_get", api.app_port, "/ready"))
        request_id = api.submit(client, {})
        admin = int(json.loads([line for line in api.log(log_name).splitlines() if '"started"' in line][0])["admin_port"])
        assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 503
        # Not received while the container is not listening: it stays in the queue, untouched.
        for _ in range(10):
            assert api.status(client, request_id)["status"] == "in_queue"
            assert api.queue_counts(api.res.queue_url) == (1, 0)
            time.sleep(0.2)
        api.start_app()
        assert api.wait_status(client, request_id, "completed")["result"]["id"] == request_id
        assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{admin}/metrics").text
        assert 'cortex_async_worker_requests_total{api_name="notready",outcome="completed"} 1.0' in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_a_stalled_upload_gets_408_and_stores_nothing(tmp_path: Path, moto: MotoServer) -> None:
    # The gateway has no Envoy in front: its own idle timeout on the body (30 s deployed, 1 s here)
    # keeps a client that sends a few bytes and stops from holding the gateway.
    import socket

    with async_api(tmp_path, moto, "stalled") as api, httpx.Client(timeout=10) as client:
        api.start_gateway(body_idle_timeout=1.0)
        before = set(api.objects())
        with socket.create_connection(("127.0.0.1", api.gateway_port), timeout=10) as stalled:
            stalled.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
            started = time.monotonic()
            answer = b""
            while b"\r\n\r\n" not in answer and time.monotonic() - started < 10:
                part = stalled.recv(4096)
                if not part:
                    break
                answer += part
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        # Nothing stored, no upload left open, nothing queued; the gateway still answers others.
        assert set(api.objects()) == before
        assert moto.client("s3").list_multipart_uploads(Bucket=api.res.bucket).get("Uploads", []) == []
        assert api.queue_counts(api.res.queue_url) == (0, 0)
        assert client.post(api.url + "/", content=b"{}").status_code == 200
