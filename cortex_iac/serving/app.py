"""The Starlette application: ``/`` calls the handler; ``/healthz``, ``/readyz`` (and
:data:`~cortex_iac.runtime_contract.READINESS_PATH`), ``/metrics`` for the pod.

With ``max_concurrency`` set (a handler RealtimeAPI's pod, which has no Envoy sidecar) the runtime
admits requests itself (:mod:`cortex_iac.serving.admission`): queue-full 503s with ``Retry-After``,
504 after ``request_timeout``, and ``/metrics`` only on ``metrics_port``. See docs/design.md,
"Serving runtime: where a call runs, and the sidecar's cost"."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
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

from cortex_iac.runtime_contract import JOB_ID_HEADER, ON_JOB_COMPLETE_PATH, READINESS_PATH, RUNTIME_METRICS_PATH
from cortex_iac.serving.admission import Admission, Deadlines, Slot, current_slot
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
from cortex_iac.serving.protocol import TIMED_OUT_KEY

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

    def __init__(self, max_batch_size: int, admission: Admission | None = None) -> None:
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
            "cortex_requests_in_flight",
            "Handler requests admitted and not yet answered (running + queued)" if admission is not None
            else "Handler requests accepted and not yet answered.", registry=self.registry,
        )
        self.queue_full: Any = None
        if admission is not None:
            # Read when scraped: nothing to count per request.
            self.in_flight.set_function(lambda: admission.in_flight)
            self.queue_full = Counter(
                "cortex_requests_rejected", "Handler requests refused with 503 before running, by reason.",
                ["reason"], registry=self.registry,
            ).labels("queue_full")
        self.batch_size: Histogram | None = None
        if max_batch_size > 1:
            buckets = sorted({2**i for i in range(max_batch_size.bit_length())} | {max_batch_size})
            self.batch_size = Histogram(
                "cortex_batch_size", "Payloads per handle_post call.", buckets=buckets, registry=self.registry
            )
        # labels() takes a lock and builds a key on every call; children are looked up once instead.
        self._children: dict[tuple[str, int], Any] = {}

    def count_from_zero(self, method: str, status: int) -> None:
        """Export the series of ``method`` and ``status`` at 0 before the first such answer."""
        if (method, status) not in self._children:
            self._children[(method, status)] = self._requests.labels(method, str(status))

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
        self._admission = (None if config.max_concurrency is None
                           else Admission(config.max_concurrency, config.max_queue_length))
        self.metrics = Metrics(config.max_batch_size, self._admission)
        self._deadlines = (None if self._admission is None or config.request_timeout is None
                           else Deadlines(config.request_timeout))
        # Request ids the runtime gives: 16 random hex digits per process, then a counter (unique
        # across pods without a uuid4 per request, which costs several µs).
        self._request_ids = itertools.count()
        self._request_id_prefix = os.urandom(8).hex()
        # The port whose requests get /metrics only (and nothing else): the bound metrics port
        # (server.py sets it once bound; it differs from config.metrics_port 0).
        self.metrics_port: int | None = config.metrics_port
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
                Route(READINESS_PATH, self._readyz, methods=["GET"]),
                Route(RUNTIME_METRICS_PATH, self._metrics, methods=["GET"]),
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
        if self._admission is not None:
            # Queue-full 503s are counted from 0, as Envoy's overflow counter is: the app-error
            # queries subtract the rejections from the 5xx (render/observability/queries.py), which
            # must not see the first rejection before its 503.
            for methods, served in ((("POST",), runner.post), (("GET", "HEAD"), runner.get)):
                for method in methods if served is not None else ():
                    self.metrics.count_from_zero(method, 503)
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

    def _on_metrics_port(self, request: Request) -> bool:
        server = request.scope.get("server")
        return self.metrics_port is not None and server is not None and server[1] == self.metrics_port

    async def _invoke(self, request: Request) -> Response:
        if self.metrics_port is not None and self._on_metrics_port(request):
            return _error(404, "the metrics port serves only " + RUNTIME_METRICS_PATH)
        started = time.perf_counter()
        method = request.method
        metrics = self.metrics
        admission = self._admission
        if admission is None:
            metrics.in_flight.inc()
        error_id = None
        try:
            payload = await self._payload(request, method)
            # Latency counts from the request's full receipt (queueing included), as Envoy's does.
            started = time.perf_counter()
            if admission is None:
                response = await self._answer(method, payload)
            else:
                response = await self._admitted(admission, request, method, payload)
        except asyncio.CancelledError:
            # Cut at the end of the grace period: counted and logged (uvicorn answers 500 to the
            # client if it can), then the cancellation goes on.
            self._record(request, method, 503, time.perf_counter() - started, None)
            raise
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
            if admission is None:
                metrics.in_flight.dec()
        status = response.status_code
        if self._draining or status == 413:
            # The pod is going away, or the body was refused unread (what follows on the connection
            # is not a request): clients must not send their next request on this connection.
            response.headers["connection"] = "close"
        request_id = self._record(request, method, status, time.perf_counter() - started, error_id)
        if request_id is not None:
            response.headers["x-request-id"] = request_id
        return response

    def _next_request_id(self) -> str:
        return f"{self._request_id_prefix}{next(self._request_ids):016x}"

    def _record(self, request: Request, method: str, status: int, latency: float, error_id: str | None) -> str | None:
        """Count and log one answered request; the request id the runtime gave it, if it gave one."""
        metrics = self.metrics
        metrics.count(method, status)
        metrics.latency.observe(latency)
        request_id = request_id_of(request.headers.get("x-request-id"))
        given = None
        if request_id is None and self._admission is not None:
            # No sidecar to give the request an id (Envoy does): the runtime gives it one, in the
            # access line and in the answer, so the logs' request-id queries find it.
            request_id = given = self._next_request_id()
        self.access_log.record(method, status, latency, error_id, request_id)
        return given

    async def _payload(self, request: Request, method: str) -> Any:
        """The request's payload (None for GET), read whole; RequestError when it cannot be served."""
        runner = self._runner
        if runner is None:
            raise RequestError(503, "not ready: the handler is still loading")
        if method in ("GET", "HEAD"):  # Starlette routes HEAD with GET; the server drops the body
            if runner.get is None:
                raise RequestError(405, "this handler has no handle_get; send a POST")
            return None
        if runner.post is None:
            raise RequestError(405, "this handler has no handle_post; send a GET")
        return decode_payload(request.headers.get("content-type", ""), await self._read_body(request))

    async def _answer(self, method: str, payload: Any) -> Response:
        if method in ("GET", "HEAD"):
            return encode_result(await self._call_get())
        if self._batcher is not None:
            return encode_result(await self._batcher.submit(payload))
        return encode_result(await self._call_post(payload))

    async def _admitted(self, admission: Admission, request: Request, method: str, payload: Any) -> Response:
        """``_answer`` within the slots: a free one at once, else a queue place, else 503; 504 once
        ``request_timeout`` has passed since the request was received (its queueing included).

        A call that outlives the timeout keeps its slot until it ends (a handler thread cannot be
        stopped, and the next request would only wait behind it, uncounted); a request whose client
        left while it waited in the queue is not run (499)."""
        entered = admission.try_enter()
        if entered is False:
            self.metrics.queue_full.inc()
            return JSONResponse(
                {"error": f"queue full: {admission.max_concurrency} requests running and "
                          f"{admission.max_queue_length} waiting; retry later"},
                status_code=503, headers={"retry-after": str(self.config.retry_after)},
            )
        held = entered is True
        deadlines = self._deadlines
        deadline = None if deadlines is None else deadlines.start()
        slot = Slot(admission)
        context = current_slot.set(slot)
        try:
            if not held:
                await admission.wait()
                held = True
                if await request.is_disconnected():
                    return _error(499, "the client left while the request waited for a slot")
            return await self._answer(method, payload)
        except asyncio.CancelledError:
            if deadline is None or not deadline.expired:
                raise  # a shutdown's, not the timeout's
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return _error(504, f"no answer within the request timeout ({self.config.request_timeout:g} s), "
                               "queueing included")
        finally:
            if deadline is not None:
                assert deadlines is not None
                deadlines.finish(deadline)
            current_slot.reset(context)
            # A call on a handler thread took the slot over: the pool frees it when the call ends.
            if held and not slot.handed_over:
                admission.leave()

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
            if request.scope.get(TIMED_OUT_KEY):  # the connection guard closed it (serving/protocol.py)
                raise RequestError(408, "the client stopped sending the request body") from None
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
        return JSONResponse({"status": status}, status_code=503,
                            headers={"connection": "close"} if self._draining else None)

    async def _metrics(self, request: Request) -> Response:
        if self.metrics_port is not None and not self._on_metrics_port(request):
            return _error(404, f"metrics are served on port {self.metrics_port}")
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)
