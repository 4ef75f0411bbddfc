"""The AsyncAPI gateway: ``POST /`` submits, ``GET /<id>`` polls (see :mod:`.contract` for the contract).

Starlette under uvicorn, one process per pod. boto3 is synchronous, so its calls run in worker
threads (a limiter sized like the client's connection pool); the event loop only moves bytes. A body
is read from the socket one chunk at a time and sent to S3 in parts of ``UPLOAD_PART_BYTES``: the
gateway holds at most one part per request, whatever the body's size.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import uvicorn
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cortex_iac.queue import contract, storage
from cortex_iac.queue.contract import GatewayConfig, QueueConfigError
from cortex_iac.queue.storage import BackendUnavailable, MultipartUpload, Store

log = logging.getLogger("cortex.async.gateway")

# Request headers not worth keeping for the container: hop-by-hop ones, and those the worker sets anew.
_DROPPED_HEADERS = frozenset({
    "host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
    "proxy-connection", "expect", contract.REQUEST_ID_HEADER.lower(),
})
# Threads that may be in a boto3 call at once (the clients' connection pools have as many sockets).
_AWS_THREADS = 64
_RETRY_AFTER = "5"


class Gateway:
    """The gateway's state: its config, the API's objects, its queue, its metrics."""

    def __init__(self, config: GatewayConfig, *, s3: Any = None, sqs: Any = None) -> None:
        self.config = config
        self.store = Store(s3 or storage.s3_client(_AWS_THREADS), config.bucket, config.key_prefix)
        self.sqs = sqs or storage.sqs_client(_AWS_THREADS)
        self.limiter = anyio.CapacityLimiter(_AWS_THREADS)
        # Bounds the gateway's memory whatever the number of clients: see contract.GATEWAY_LARGE_UPLOADS.
        self.large_uploads = anyio.Semaphore(contract.GATEWAY_LARGE_UPLOADS)
        self.registry = CollectorRegistry()
        self.requests = Counter("cortex_async_gateway_requests", "Requests answered by the gateway.",
                                ["api_name", "method", "code"], registry=self.registry)
        self.latency = Histogram("cortex_async_gateway_request_duration_seconds", "Time to answer a request.",
                                 ["api_name", "method"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.app: ASGIApp = _EndpointPrefix(Starlette(routes=[
            Route(contract.GATEWAY_HEALTH_PATH, self.healthz, methods=["GET"]),
            Route("/", self.submit, methods=["POST"]),
            Route("/{request_id}", self.poll, methods=["GET"]),
        ], exception_handlers={404: _not_found, 405: _not_allowed}), config.endpoint)

    async def _aws(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    # -- routes --
    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def submit(self, request: Request) -> Response:
        return await self._timed("POST", self._submit(request))

    async def poll(self, request: Request) -> Response:
        return await self._timed("GET", self._poll(request.path_params["request_id"]))

    async def _timed(self, method: str, answer: Awaitable[Response]) -> Response:
        started = time.perf_counter()
        try:
            response = await answer
        except BackendUnavailable as error:
            log.warning("backend unavailable", extra={"api_name": self.config.api_name, "error": str(error)})
            response = _error(503, f"storage or queue unavailable: {error}; retry later",
                              headers={"Retry-After": _RETRY_AFTER})
        self.requests.labels(self.config.api_name, method, str(response.status_code)).inc()
        self.latency.labels(self.config.api_name, method).observe(time.perf_counter() - started)
        return response

    async def _submit(self, request: Request) -> Response:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _error(400, f"Content-Length {declared!r} is not a number")
            if int(declared) > limit:
                return _error(413, f"body of {declared} bytes is over this API's limit of {limit} bytes")
        request_id = str(uuid.uuid4())
        key = contract.payload_key(self.config.key_prefix, request_id)
        # The payload object is opaque bytes: the request's Content-Type travels in headers.json (moto
        # would even drop a form-encoded body stored with its own type).
        content_type = "application/octet-stream"
        upload = MultipartUpload(self.store, key, content_type)
        buffer = bytearray()
        total = 0
        large = False
        chunks = request.stream().__aiter__()
        try:
            while True:
                try:
                    with anyio.fail_after(self.config.body_idle_timeout):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    await self._aws(upload.abort)
                    return _error(408, f"no part of the body arrived for {self.config.body_idle_timeout:g} s")
                total += len(chunk)
                if total > limit:
                    await self._aws(upload.abort)
                    return _error(413, f"body is over this API's limit of {limit} bytes")
                buffer += chunk
                if not large and len(buffer) > contract.BUFFER_WITHOUT_SLOT_BYTES:
                    await self.large_uploads.acquire()
                    large = True
                if len(buffer) >= contract.UPLOAD_PART_BYTES:
                    part = bytes(buffer[: contract.UPLOAD_PART_BYTES])
                    del buffer[: contract.UPLOAD_PART_BYTES]
                    await self._aws(upload.upload_part, part)
            if upload.upload_id is None:
                await self._aws(self.store.put, key, bytes(buffer), content_type)
            else:
                if buffer:
                    await self._aws(upload.upload_part, bytes(buffer))
                await self._aws(upload.complete)
        except ClientDisconnect:
            await self._aws(upload.abort)
            return _error(400, "client disconnected before the body was complete")
        except BackendUnavailable:
            await self._aws(upload.abort)
            raise
        finally:
            if large:
                self.large_uploads.release()
        del buffer
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROPPED_HEADERS]
        # The marker before the message: once the client has its id, GET never says 404 for it. If the
        # send fails the client gets 503 and never learns the id; the lifecycle rule removes the objects.
        async with anyio.create_task_group() as group:
            group.start_soon(self._aws, self.store.put_headers, request_id, headers)
            group.start_soon(self._aws, self.store.put_marker, request_id, "in_queue")
        await self._aws(self._send, request_id)
        return JSONResponse({"id": request_id})

    def _send(self, request_id: str) -> None:
        try:
            self.sqs.send_message(QueueUrl=self.config.queue_url, MessageBody=request_id)
        except Exception as error:
            raise BackendUnavailable("SQS SendMessage", error) from error

    async def _poll(self, request_id: str) -> Response:
        if not contract.ID_PATTERN.match(request_id):
            return _error(404, f"id {request_id} not found")
        outcome = await self._aws(self.store.outcome, request_id)
        if outcome is None:
            return _error(404, f"id {request_id} not found")
        head: dict[str, Any] = {"id": request_id, "status": outcome.status}
        if outcome.status == "failed":
            head["reason"] = outcome.reason
        if outcome.status != "completed":
            return JSONResponse(head)
        head["timestamp"] = storage.rfc3339(outcome.result["LastModified"])
        # The result is streamed through as stored (the worker checked it is JSON): never parsed here.
        opening = json.dumps(head)[:-1].encode() + b', "result": '
        body = outcome.result["Body"]

        async def stream() -> AsyncIterator[bytes]:
            yield opening
            async for chunk in iterate_in_threadpool(storage.iter_body(body)):
                yield chunk
            yield b"}"

        return StreamingResponse(stream(), media_type="application/json")


class _EndpointPrefix:
    """Accepts ``<endpoint>`` and ``<endpoint>/...`` as ``/`` and ``/...`` (when the load balancer did
    not strip the endpoint, e.g. under ``cortex serve``)."""

    def __init__(self, app: ASGIApp, endpoint: str) -> None:
        self.app, self.endpoint = app, endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.endpoint and scope["type"] == "http":
            path: str = scope["path"]
            if path == self.endpoint or path.startswith(self.endpoint + "/"):
                scope = {**scope, "path": path[len(self.endpoint):] or "/"}
        await self.app(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, f"{request.url.path} not found (POST / to submit, GET /<id> for a result)")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _error(405, f"{request.method} is not allowed on {request.url.path}")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def main() -> int:
    from cortex_iac.serving.logs import configure_logging

    try:
        config = GatewayConfig.from_env(os.environ)
    except QueueConfigError as error:
        print(f"cortex async gateway: {error}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    gateway = Gateway(config)
    log.info("starting", extra={"api_name": config.api_name, "port": config.port, "bucket": config.bucket,
                                "key_prefix": config.key_prefix, "max_body_bytes": config.max_body_bytes,
                                "result_retention_days": config.result_retention_days})
    if config.metrics_port:
        # Its own port: the load balancer reaches only config.port.
        start_http_server(config.metrics_port, registry=gateway.registry)
    server = uvicorn.Server(uvicorn.Config(
        gateway.app, host=config.host, port=config.port, log_config=None, access_log=False, server_header=False,
        timeout_keep_alive=75, timeout_graceful_shutdown=max(config.grace_period - 1, 0.1),  # type: ignore[arg-type]
    ))
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
