"""Running the runtime under uvicorn, with Kubernetes' shutdown contract: on SIGTERM, readiness fails at
once, the listener closes (after ``drain_seconds``, in a pod without a sidecar), accepted requests
finish, and the process exits within the grace period."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time
from types import FrameType

import uvicorn

from cortex_iac.runtime_contract import DRAIN_MAX_SECONDS, RUNTIME_METRICS_PATH
from cortex_iac.serving.app import Runtime
from cortex_iac.serving.config import RuntimeConfig
from cortex_iac.serving.logs import configure_logging
from cortex_iac.serving.protocol import ConnectionStats, guarded_protocol

log = logging.getLogger("cortex.runtime")

# Part of the grace period kept back for what follows the drain (lifespan shutdown, log flush, exit).
_EXIT_MARGIN_SECONDS = 1.0


class PortInUseError(Exception):
    """A port the runtime must listen on is taken; nothing was started."""


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, with the drain of a pod's shutdown.

    On the first SIGTERM/SIGINT readiness fails and every answer carries ``Connection: close``; the
    listener stays open for ``drain_seconds`` (the load balancer deregisters the pod meanwhile), then
    until no connection came for ``drain_quiet_seconds`` (at most :data:`DRAIN_MAX_SECONDS` more);
    then uvicorn stops accepting and lets accepted requests finish within what is left of the grace
    period. A second Ctrl-C stops at once.

    uvicorn re-raises a captured signal after a graceful shutdown (killing the process by that signal);
    a drained runtime should exit with its own code instead, so the signal is not recorded for that.
    """

    def __init__(self, config: uvicorn.Config, runtime: Runtime, stats: ConnectionStats) -> None:
        super().__init__(config)
        self._runtime = runtime
        self._stats = stats
        self._drain_started: float | None = None
        self._seen_connections = 0
        self._quiet_since = 0.0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_started is not None or self.should_exit:
            if sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop waiting for requests
                self.should_exit = True
            return
        self._runtime.start_draining()
        self._drain_started = self._quiet_since = time.monotonic()
        self._seen_connections = self._stats.accepted
        rc = self._runtime.config
        if rc.drain_seconds == 0 and rc.drain_quiet_seconds == 0:
            self._stop_accepting()

    async def on_tick(self, counter: int) -> bool:
        if self._drain_started is not None and not self.should_exit:
            now, rc = time.monotonic(), self._runtime.config
            if self._stats.accepted != self._seen_connections:
                self._seen_connections, self._quiet_since = self._stats.accepted, now
            accepting = now - self._drain_started
            if accepting >= rc.drain_seconds and (
                    now - self._quiet_since >= rc.drain_quiet_seconds
                    or accepting >= rc.drain_seconds + DRAIN_MAX_SECONDS):
                self._stop_accepting()
        return await super().on_tick(counter)

    def _stop_accepting(self) -> None:
        assert self._drain_started is not None
        left = self._runtime.config.grace_period - (time.monotonic() - self._drain_started) - _EXIT_MARGIN_SECONDS
        self.config.timeout_graceful_shutdown = max(left, 0.1)  # type: ignore[assignment]
        log.info("draining: the listener closes, accepted requests run to completion",
                 extra={"grace_seconds": round(max(left, 0.1), 3)})
        self.should_exit = True


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; PortInUseError naming the port when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not count
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise PortInUseError(f"cannot listen on {host}:{port} ({error.strerror}); nothing was started") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(config: RuntimeConfig) -> int:
    """Serve ``config``'s handler until SIGTERM/SIGINT; return the process exit code.

    0 after a graceful drain, 1 when the handler failed to load (the server never reported ready),
    2 when a port is in use (nothing started).
    """
    configure_logging(config.log_level)
    server: _DrainingServer | None = None

    def stop() -> None:
        assert server is not None
        server.should_exit = True

    sockets: list[socket.socket] = []
    try:
        for port in (config.port, config.metrics_port):
            if port is not None:
                sockets.append(bind(config.host, port))
    except PortInUseError as error:
        for sock in sockets:
            sock.close()
        log.error(str(error))
        print(f"cortex serving: {error}", file=sys.stderr, flush=True)
        return 2
    runtime = Runtime(config, on_fatal=stop)
    if config.metrics_port is not None:
        runtime.metrics_port = int(sockets[1].getsockname()[1])
    bound = [int(sock.getsockname()[1]) for sock in sockets]
    log.info(f"listening on http://{config.host}:{bound[0]}"
             + (f", metrics on http://{config.host}:{bound[1]}{RUNTIME_METRICS_PATH}" if len(bound) > 1 else ""),
             extra={"port": bound[0], "metrics_port": bound[1] if len(bound) > 1 else None})
    stats = ConnectionStats()
    server = _DrainingServer(
        uvicorn.Config(
            runtime.app,
            http=guarded_protocol(headers_timeout=config.request_headers_timeout, idle_timeout=config.keep_alive,
                                  max_connections=config.max_connections, capped_port=bound[0], stats=stats),
            log_config=None,
            access_log=False,
            server_header=False,
            # The proxy in front must close idle connections sooner (RuntimeConfig.keep_alive).
            timeout_keep_alive=config.keep_alive,  # type: ignore[arg-type]
            timeout_graceful_shutdown=max(config.grace_period - _EXIT_MARGIN_SECONDS, 0.1),  # type: ignore[arg-type]
        ),
        runtime,
        stats,
    )
    started = time.monotonic()
    try:
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
    code = runtime.exit_code or (0 if server.started else 1)
    log.info("exited", extra={"exit_code": code, "uptime_seconds": round(time.monotonic() - started, 3)})
    sys.stdout.flush()
    return code
