"""The Starlette application: ``/`` calls the handler; ``/healthz``, ``/readyz``, ``/metrics`` for the pod."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cortex_iac.runtime_contract import JOB_ID_HEADER, ON_JOB_COMPLETE_PATH
from cortex_iac.serving.batching import Batcher
from cortex_iac.serving.codec import (
    RequestError,
    ResultError,
    decode_payload,
    encode_result,
)
from cortex_iac.serving.config import RuntimeConfig
from cortex_iac.serving.handler import (
    HandlerRunner,
    install_requirements,
    load_handler_class,
)
from cortex_iac.serving.logs import AccessLog, request_id_of

log = logging.getLogger("cortex.runtime")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# How often buffered access-log lines are written.
_ACCESS_LOG_FLUSH_SECONDS = 0.25


class HandlerFailure(Exception):
    """The handler raised; the traceback is already logged under ``error_id``."""

    def __init__(self, error_id: str) -> None:
        self.error_id = error_id
        super().__init__(error_id)


def _error(status: int, message: str, error_id: str | None = None) -> JSONResponse:
    body: dict[str, str] = {"error": message}
    if error_id is not None:
        body["error_id"] = error_id
    return JSONResponse(body, status_code=status)


async def _in_daemon_thread(function: Callable[[], Any]) -> Any:
    """``function()`` in a daemon thread: a model still loading when SIGTERM comes must not hold the
    process past its grace period (``asyncio.to_thread`` threads are joined at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # cancelled: the server stopped while loading
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def work() -> None:
        try:
            result, error = function(), None
        except BaseException as raised:  # noqa: BLE001 - handed to the awaiting task, which logs it
            result, error = None, raised
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="handler-load", daemon=True).start()
    return await future


class Metrics:
    """The runtime's Prometheus metrics, in a registry of their own (one per runtime)."""

    def __init__(self, max_batch_size: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "cortex_requests", "Requests to the handler, by method and status.", ["method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cortex_request_duration_seconds", "Time from request to response for handler requests.",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge(
            "cortex_requests_in_flight", "Handler requests accepted and not yet answered.", registry=self.registry
        )
        self.batch_size: Histogram | None = None
        if max_batch_size > 1:
            buckets = sorted({2**i for i in range(max_batch_size.bit_length())} | {max_batch_size})
            self.batch_size = Histogram(
                "cortex_batch_size", "Payloads per handle_post call.", buckets=buckets, registry=self.registry
            )
        # labels() takes a lock and builds a key on every call; children are looked up once instead.
        self._children: dict[tuple[str, int], Any] = {}

    def count(self, method: str, status: int) -> None:
        """Count one answered handler request."""
        child = self._children.get((method, status))
        if child is None:
            child = self._children[(method, status)] = self._requests.labels(method, str(status))
        child.inc()


class Runtime:
    """One handler served over HTTP.

    ``app`` is the ASGI application. The handler loads in a worker thread when the app starts, while
    ``/healthz`` already answers; ``/readyz`` answers 200 from the moment ``Handler.__init__`` returned
    until ``start_draining`` is called. If loading fails, ``exit_code`` becomes 1 and ``on_fatal`` is
    called (the server uses it to stop).
    """

    def __init__(self, config: RuntimeConfig, on_fatal: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.exit_code = 0
        self.metrics = Metrics(config.max_batch_size)
        # Access lines are info-level lines: CORTEX_LOG_LEVEL=warning (or error) turns them off.
        self.access_log = AccessLog(enabled=config.log_level in ("debug", "info"))
        self._on_fatal = on_fatal
        self._runner: HandlerRunner | None = None
        self._batcher: Batcher | None = None
        self._ready = False
        self._draining = False
        self.app = Starlette(
            routes=[
                Route("/", self._invoke, methods=["GET", "POST"]),
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/readyz", self._readyz, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
                *([Route(ON_JOB_COMPLETE_PATH, self._on_job_complete, methods=["POST"])]
                  if config.on_job_complete else []),
            ],
            lifespan=self._lifespan,
        )

    @property
    def ready(self) -> bool:
        """True once the handler is loaded and until draining starts."""
        return self._ready and not self._draining

    def start_draining(self) -> None:
        """Fail readiness from now on; requests keep being served (the server stops accepting them)."""
        if not self._draining:
            self._draining = True
            log.info("draining: readiness now fails, accepted requests run to completion")

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        loader = asyncio.create_task(self._load())
        flusher = asyncio.create_task(self._flush_access_log())
        try:
            yield
        finally:
            loader.cancel()
            flusher.cancel()
            if self._batcher is not None:
                await self._batcher.stop()
            if self._runner is not None:
                self._runner.shutdown()
            self.access_log.flush()

    async def _flush_access_log(self) -> None:
        while True:
            await asyncio.sleep(_ACCESS_LOG_FLUSH_SECONDS)
            self.access_log.flush()

    async def _load(self) -> None:
        config = self.config
        started = time.perf_counter()
        try:
            handler = await _in_daemon_thread(self._construct_handler)
        except Exception as error:
            log.exception(  # the error in the message too: it is the one line people read
                f"the handler failed to load, exiting: {type(error).__name__}: {error}",  # noqa: TRY401
                extra={"handler_path": config.handler_path},
            )
            self.exit_code = 1
            self._on_fatal()
            return
        runner = HandlerRunner(handler, config.threads_per_process)
        if config.max_batch_size > 1 and runner.post is not None:
            self._batcher = Batcher(
                self._call_post,
                max_batch_size=config.max_batch_size,
                interval=config.batch_interval,
                slots=config.threads_per_process,
                on_batch=self.metrics.batch_size.observe if self.metrics.batch_size else lambda size: None,
            )
            self._batcher.start()
        self._runner = runner
        self._ready = True
        log.info(
            "handler loaded; ready",
            extra={"handler_path": config.handler_path, "load_seconds": round(time.perf_counter() - started, 3)},
        )

    def _construct_handler(self) -> object:
        config = self.config
        if config.python_requirements:
            install_requirements(config.python_requirements, config.packages_dir)
        return load_handler_class(config.handler_path)(config.handler_config)

    @staticmethod
    async def _call(name: str, method: Callable[[Any], Any] | None, payload: Any) -> Any:
        # A handler method's exception is logged with its traceback under a new error id, which the
        # answer names (HandlerFailure).
        assert method is not None
        try:
            return await method(payload)
        except Exception:
            error_id = uuid.uuid4().hex[:16]
            log.exception(f"{name} raised", extra={"error_id": error_id})
            raise HandlerFailure(error_id) from None

    async def _call_post(self, payload: Any) -> Any:
        assert self._runner is not None
        return await self._call("handle_post", self._runner.post, payload)

    async def _call_get(self) -> Any:
        assert self._runner is not None
        return await self._call("handle_get", self._runner.get, None)

    async def _invoke(self, request: Request) -> Response:
        started = time.perf_counter()
        method = request.method
        metrics = self.metrics
        metrics.in_flight.inc()
        error_id = None
        try:
            response = await self._respond(request, method)
        except HandlerFailure as failure:
            error_id = failure.error_id
            response = _error(500, "the handler raised an exception; see the server log", error_id)
        except ResultError as error:
            error_id = uuid.uuid4().hex[:16]
            log.error(str(error), extra={"error_id": error_id})
            response = _error(500, str(error), error_id)
        except RequestError as error:
            response = _error(error.status, str(error))
        finally:
            metrics.in_flight.dec()
        latency = time.perf_counter() - started
        status = response.status_code
        metrics.count(method, status)
        metrics.latency.observe(latency)
        self.access_log.record(method, status, latency, error_id, request_id_of(request.headers.get("x-request-id")))
        return response

    async def _respond(self, request: Request, method: str) -> Response:
        runner = self._runner
        if runner is None:
            return _error(503, "not ready: the handler is still loading")
        if method in ("GET", "HEAD"):  # Starlette routes HEAD with GET; the server drops the body
            if runner.get is None:
                return _error(405, "this handler has no handle_get; send a POST")
            return encode_result(await self._call_get())
        if runner.post is None:
            return _error(405, "this handler has no handle_post; send a GET")
        payload = decode_payload(request.headers.get("content-type", ""), await self._read_body(request))
        if self._batcher is not None:
            return encode_result(await self._batcher.submit(payload))
        return encode_result(await self._call_post(payload))

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
        chunks = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(413, f"request body is over the limit of {limit} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            # Nobody will read the answer; 499 (nginx's "client closed request") marks it in metrics and logs.
            raise RequestError(499, "the client disconnected before sending the whole body") from None
        return b"".join(chunks)

    async def _on_job_complete(self, request: Request) -> Response:
        # The batch worker posts the job's final status and metrics here once; it logs any answer
        # but 200 and 404 (no hook) and counts the job as ended either way.
        runner = self._runner
        if runner is None:
            return _error(503, "not ready: the handler is still loading")
        if runner.on_job_complete is None:
            return _error(404, "this handler has no on_job_complete")
        try:
            payload = decode_payload(request.headers.get("content-type", ""), await self._read_body(request))
            result = await self._call("on_job_complete", runner.on_job_complete, payload)
        except RequestError as error:
            return _error(error.status, str(error))
        except HandlerFailure as failure:
            return _error(500, "on_job_complete raised an exception; see the server log", failure.error_id)
        log.info("on_job_complete ran", extra={"job_id": request_id_of(request.headers.get(JOB_ID_HEADER))})
        try:
            return encode_result({} if result is None else result)
        except ResultError as error:
            return _error(500, str(error))

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def _readyz(self, request: Request) -> Response:
        if self.ready:
            return JSONResponse({"status": "ready"})
        status = "draining" if self._draining else ("failed" if self.exit_code else "loading")
        return JSONResponse({"status": status}, status_code=503)

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)
