"""Running the runtime under uvicorn, with Kubernetes' shutdown contract: on SIGTERM, readiness fails at
once, the listener closes, accepted requests finish, and the process exits within the grace period."""

from __future__ import annotations

import logging
import signal
import sys
import time
from types import FrameType

import uvicorn

from cortex_iac.serving.app import Runtime
from cortex_iac.serving.config import RuntimeConfig
from cortex_iac.serving.logs import configure_logging

log = logging.getLogger("cortex.runtime")

# Part of the grace period kept back for what follows the drain (lifespan shutdown, log flush, exit).
_EXIT_MARGIN_SECONDS = 1.0
# How long an idle keep-alive connection stays open. The proxy in front must close idle upstream
# connections sooner (Envoy: the app cluster's idle_timeout), or it may send a request on a connection
# the server is closing at that moment, and the client gets a 503.
_KEEP_ALIVE_SECONDS = 75


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, with readiness failing the moment a shutdown signal arrives.

    uvicorn re-raises a captured signal after a graceful shutdown (killing the process by that signal);
    a drained runtime should exit with its own code instead, so the signal is not recorded for that.
    """

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self._runtime = runtime

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._runtime.start_draining()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for requests
        else:
            self.should_exit = True


def run(config: RuntimeConfig) -> int:
    """Serve ``config``'s handler until SIGTERM/SIGINT; return the process exit code.

    0 after a graceful drain, 1 when the handler failed to load (the server never reported ready).
    """
    configure_logging(config.log_level)
    server: _DrainingServer | None = None

    def stop() -> None:
        assert server is not None
        server.should_exit = True

    runtime = Runtime(config, on_fatal=stop)
    server = _DrainingServer(
        uvicorn.Config(
            runtime.app,
            host=config.host,
            port=config.port,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_keep_alive=_KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=max(config.grace_period - _EXIT_MARGIN_SECONDS, 0.1),  # type: ignore[arg-type]
        ),
        runtime,
    )
    started = time.monotonic()
    server.run()
    code = runtime.exit_code or (0 if server.started else 1)
    log.info("exited", extra={"exit_code": code, "uptime_seconds": round(time.monotonic() - started, 3)})
    sys.stdout.flush()
    return code
