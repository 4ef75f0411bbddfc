"""uvicorn's httptools protocol with the connection guards Envoy gives a pod with a sidecar.

uvicorn times out only idle keep-alive connections. A client that sends part of a request and
stalls would hold its connection (and the task reading its body) forever; so would any number of
them. :func:`guarded_protocol` adds, per connection:

* an **idle timeout** for a connection that has not sent a byte yet: ``idle_timeout`` seconds (the
  keep-alive), then it is closed without an answer, as uvicorn closes an idle keep-alive one;
* a **headers deadline**: a request's headers must arrive within ``headers_timeout`` seconds of its
  first byte (Envoy's ``request_headers_timeout``); then ``408`` and the connection closes;
* a **body idle timeout**: while a request's body is still arriving, at most ``headers_timeout``
  seconds may pass without a byte; then ``408`` and the connection closes, and the request, which
  never got a slot (the runtime admits only complete requests), is marked timed out
  (:data:`TIMED_OUT_KEY` in its ASGI scope) so that the runtime counts it as 408. Time during which
  uvicorn itself stopped reading (a pipelined request behind one being answered, a body arriving
  faster than the app reads it) does not count;
* a **connection cap** on the traffic port: a connection accepted there while ``max_connections``
  are open there is closed at once. The metrics port (Prometheus, the liveness probe) is not capped,
  so a full traffic port does not hide the pod's metrics or fail its liveness;
* **no protocol upgrade** other than uvicorn's websockets: httptools stops parsing at an
  ``Upgrade`` (``curl --http2`` sends ``Upgrade: h2c``), which would lose the request's body, so such
  a request gets ``400``.

Timers are armed only when a read leaves a request incomplete (and one per new connection): a
request whose headers and body arrive in one read on a kept-alive connection costs none. Pinned to
uvicorn 0.54's ``HttpToolsProtocol`` (``constraints.txt``); ``tests/live/test_runtime_request_path.py``
covers each guard against the real server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Set in a request's ASGI scope when its body stopped arriving; the runtime answers it as 408.
TIMED_OUT_KEY = "cortex.body_timed_out"

_FRESH, _HEADERS, _BODY, _IDLE = range(4)
_TIMEOUT_BODY = b'{"error":"request timeout: the client stopped sending the request"}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\nconnection: close\r\n\r\n" + _TIMEOUT_BODY
)


@dataclass
class ConnectionStats:
    """Counted by every connection of one server: ``accepted`` since start (every port), ``open`` on
    the capped port now."""

    accepted: int = 0
    open: int = 0


def guarded_protocol(*, headers_timeout: float, idle_timeout: float, max_connections: int | None,
                     capped_port: int | None, stats: ConnectionStats) -> type[HttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with the guards of the module docstring;
    ``capped_port``: the bound traffic port ``max_connections`` applies to."""

    class GuardedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._phase = _FRESH
            self._timer: asyncio.TimerHandle | None = None
            self._headers_deadline = 0.0
            self._capped = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            stats.accepted += 1
            if max_connections is not None and self.server is not None and self.server[1] == capped_port:
                if stats.open >= max_connections:
                    transport.close()
                    return
                stats.open += 1
                self._capped = True
            self._timer = self.loop.call_later(idle_timeout, self._timed_out)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_timer()
            if self._capped:
                self._capped = False
                stats.open -= 1
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            phase = self._phase
            if phase == _HEADERS:
                if self._timer is None:  # the deadline counts from the request's first byte
                    self._timer = self.loop.call_at(self._headers_deadline, self._timed_out)
            elif phase == _BODY:
                self._cancel_timer()  # idle time counts from the last byte
                self._timer = self.loop.call_later(headers_timeout, self._timed_out)
            elif self._timer is not None:
                self._cancel_timer()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._headers_deadline = self.loop.time() + headers_timeout
            self._cancel_timer()  # a fresh connection's idle timer
            self._phase = _HEADERS

        def on_headers_complete(self) -> None:
            if self.parser.should_upgrade() and self._get_upgrade() != b"websocket":
                self._phase = _IDLE
                self.send_400_response("Protocol upgrades are not supported; send plain HTTP/1.1.")
                return
            super().on_headers_complete()
            self._phase = _BODY

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._phase = _IDLE

        def _cancel_timer(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _timed_out(self) -> None:
            self._timer = None
            transport = self.transport
            if transport.is_closing():
                return
            answering = self.cycle is not None and not self.cycle.response_complete and self._phase == _HEADERS
            if self._phase in (_HEADERS, _BODY) and (self.flow.read_paused or self.pipeline or answering):
                # uvicorn stopped reading (an earlier request is being answered, or the app reads
                # the body slower than it comes): the client is not the one stalling.
                self._timer = self.loop.call_later(headers_timeout, self._timed_out)
                return
            if self._phase == _HEADERS:
                transport.write(_TIMEOUT_RESPONSE)
            elif self._phase == _BODY:
                cycle = self.cycle
                if cycle is not None and not cycle.response_started:
                    cycle.scope[TIMED_OUT_KEY] = True  # type: ignore[literal-required]
                    transport.write(_TIMEOUT_RESPONSE)
            # _FRESH: the connection never sent a byte; it is closed without an answer.
            transport.close()

    return GuardedProtocol
