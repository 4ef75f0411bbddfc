"""The `CORTEX_*` runtime contract: the serving runtime's settings as one plain dataclass, written by the
renderer into a pod's environment and read back by the runtime.

Deliberately free of the pydantic API specs so the runtime image needs nothing but this package.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cortex_iac.errors import CortexError


class RuntimeConfigError(CortexError):
    """A runtime setting (an environment variable in a pod) has a value the runtime cannot use."""


@dataclass(frozen=True)
class RuntimeConfig:
    """Everything the serving runtime needs to run one handler.

    Attributes:
        handler_path: path of the Python file that defines ``class Handler``.
        handler_config: the API spec's ``handler.config``, passed to ``Handler.__init__`` (default ``{}``).
        threads_per_process: size of the thread pool that runs synchronous handler methods, and the
            number of batches that may run at once (default 1).
        max_batch_size: above 1, ``handle_post`` receives a list of up to this many payloads and
            returns a list of results in the same order (default 1: no batching).
        batch_interval: seconds a batch waits for more payloads after its first one; ``None`` sends
            what is queued as soon as a thread is free (default ``None``).
        host: address to listen on (default ``"0.0.0.0"``).
        port: port to listen on (default 8080, Cortex's ``pod.port`` default).
        max_body_bytes: larger request bodies are refused with 413 (default 10 MiB).
        grace_period: seconds from SIGTERM to exit; requests already accepted get until then to
            finish (default 30, Kubernetes' ``terminationGracePeriodSeconds`` default).
        python_requirements: pip requirement strings installed into ``packages_dir`` before the
            handler loads (default none).
        packages_dir: where ``python_requirements`` go; the pod mounts ``/tmp`` as an emptyDir, the
            only writable place under a read-only root filesystem (default ``/tmp/cortex/python``).
        log_level: level of the runtime's own log lines; per-request lines are always written
            (default ``"info"``).
        max_concurrency: admission inside the runtime (a handler RealtimeAPI's pod has no Envoy
            sidecar): at most this many handler requests run at once, ``max_queue_length`` more
            wait, any further one gets 503 with ``Retry-After: retry_after`` at once. A request is
            admitted only once its whole body has arrived, so slow uploads hold no slot. ``None``
            (default): no admission, the sidecar in front does it.
        max_queue_length: requests waiting for a slot (with ``max_concurrency``; default 0).
        request_timeout: seconds from a request's full receipt (queueing included) to its answer,
            then 504 (with ``max_concurrency``; default none).
        retry_after: the ``Retry-After`` of a queue-full 503, in seconds (default 1).
        metrics_port: serve ``/metrics`` on this port only (the pod's metrics port, which only
            Prometheus may reach) instead of on ``port`` (default none: on ``port``).
        max_connections: connections open at once; one more is closed as soon as it is accepted
            (default none: no cap).
        request_headers_timeout: seconds a client has to send a request's headers, and that a
            request's body may pause between two chunks; then 408 and the connection closes
            (default 10).
        keep_alive: seconds an idle keep-alive connection (or a new one that has not sent a byte)
            stays open (default 75). Whatever sends requests on kept-alive connections must close
            idle ones sooner, or it may send one just as the runtime closes it (the keep-alive
            race): Envoy's app cluster closes them after 1 s; in a pod without the sidecar the
            renderer sets it above the load balancer's and the KEDA interceptor's idle timeouts.
        drain_seconds: after SIGTERM, readiness fails and every answer carries ``Connection:
            close``, but new connections are still accepted for this long (the load balancer's
            deregistration time; default 0).
        drain_quiet_seconds: after ``drain_seconds``, keep accepting until no connection came for
            this long (at most :data:`DRAIN_MAX_SECONDS` more; default 0: stop at once). Locally,
            where no load balancer deregisters the pod, the clients themselves must go away.
        on_job_complete: serve ``POST /on-job-complete`` with the handler's ``on_job_complete``
            method (a BatchAPI's: its batch worker posts there once, when the job ends); otherwise
            that path is 404, as for any path but ``/`` (default ``False``; written to the
            environment only when true).
    """

    handler_path: str
    handler_config: dict[str, Any] = field(default_factory=dict)
    threads_per_process: int = 1
    max_batch_size: int = 1
    batch_interval: float | None = None
    host: str = "0.0.0.0"
    port: int = 8080
    max_body_bytes: int = 10 * 1024 * 1024
    grace_period: float = 30.0
    python_requirements: tuple[str, ...] = ()
    packages_dir: str = "/tmp/cortex/python"
    log_level: str = "info"
    max_concurrency: int | None = None
    max_queue_length: int = 0
    request_timeout: float | None = None
    retry_after: int = 1
    metrics_port: int | None = None
    max_connections: int | None = None
    request_headers_timeout: float = 10.0
    keep_alive: float = 75.0
    drain_seconds: float = 0.0
    drain_quiet_seconds: float = 0.0
    on_job_complete: bool = False

    def __post_init__(self) -> None:
        if not self.handler_path:
            raise RuntimeConfigError("handler_path is empty: name the file that defines class Handler")
        _require(self.threads_per_process >= 1, "threads_per_process", self.threads_per_process, "must be >= 1")
        _require(self.max_batch_size >= 1, "max_batch_size", self.max_batch_size, "must be >= 1")
        _require(
            self.batch_interval is None or self.batch_interval > 0,
            "batch_interval", self.batch_interval, "must be > 0 seconds, or unset",
        )
        _require(0 <= self.port <= 65535, "port", self.port, "must be 0..65535")
        _require(self.max_body_bytes >= 1, "max_body_bytes", self.max_body_bytes, "must be >= 1")
        _require(self.grace_period > 0, "grace_period", self.grace_period, "must be > 0 seconds")
        _require(self.max_concurrency is None or self.max_concurrency >= 1,
                 "max_concurrency", self.max_concurrency, "must be >= 1, or unset")
        _require(self.max_queue_length >= 0, "max_queue_length", self.max_queue_length, "must be >= 0")
        _require(self.request_timeout is None or self.request_timeout > 0,
                 "request_timeout", self.request_timeout, "must be > 0 seconds, or unset")
        _require(0 <= self.retry_after <= 3600, "retry_after", self.retry_after, "must be 0..3600 seconds")
        _require(self.metrics_port is None or (0 <= self.metrics_port <= 65535
                                               and (self.metrics_port != self.port or self.port == 0)),
                 "metrics_port", self.metrics_port, "must be 0..65535 and not the port (0: any free one), or unset")
        _require(self.max_connections is None or self.max_connections >= 1,
                 "max_connections", self.max_connections, "must be >= 1, or unset")
        _require(self.request_headers_timeout > 0, "request_headers_timeout", self.request_headers_timeout,
                 "must be > 0 seconds")
        _require(self.keep_alive > 0, "keep_alive", self.keep_alive, "must be > 0 seconds")
        _require(self.drain_seconds >= 0, "drain_seconds", self.drain_seconds, "must be >= 0 seconds")
        _require(self.drain_quiet_seconds >= 0, "drain_quiet_seconds", self.drain_quiet_seconds,
                 "must be >= 0 seconds")
        _require(
            self.log_level in LOG_LEVELS, "log_level", self.log_level, f"must be one of {', '.join(LOG_LEVELS)}"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RuntimeConfig:
        """Build the config from ``CORTEX_*`` variables (see the serving README for the table).

        ``CORTEX_HANDLER_PATH`` is required; every other variable falls back to the field default.
        Raises ``RuntimeConfigError`` naming the variable and its bad value.
        """
        if not env.get("CORTEX_HANDLER_PATH"):
            raise RuntimeConfigError("CORTEX_HANDLER_PATH is not set: name the file that defines class Handler")
        values: dict[str, Any] = {"handler_path": env["CORTEX_HANDLER_PATH"]}
        for name, parse in _ENV_PARSERS.items():
            key = "CORTEX_" + name.upper()
            raw = env.get(key)
            if raw is None or raw == "":
                continue
            try:
                values[name] = parse(raw)
            except ValueError as error:
                raise RuntimeConfigError(f"Config '{key}' has value {raw!r}. {error}") from error
        try:
            return cls(**values)
        except RuntimeConfigError as error:
            raise RuntimeConfigError(f"{error} (from CORTEX_* environment variables)") from error

    def to_env(self) -> dict[str, str]:
        """The ``CORTEX_*`` variables that ``from_env`` turns back into this config."""
        env = {"CORTEX_HANDLER_PATH": self.handler_path}
        for name in _ENV_PARSERS:
            value = getattr(self, name)
            if value is None or value is False:  # unset, or a flag left off (the default)
                continue
            if name in _WRITTEN_ONLY_WHEN_SET and value == _DEFAULTS[name]:
                continue
            if name in ("handler_config", "python_requirements"):
                env["CORTEX_" + name.upper()] = json.dumps(list(value) if isinstance(value, tuple) else value)
            elif isinstance(value, bool):
                env["CORTEX_" + name.upper()] = "true" if value else "false"
            else:
                env["CORTEX_" + name.upper()] = str(value)
        return env


LOG_LEVELS = ("debug", "info", "warning", "error")

DRAIN_MAX_SECONDS = 30.0
"""The most ``drain_quiet_seconds`` may extend the accepting part of a drain by."""

READINESS_PATH = "/-/ready"
"""Readiness on the traffic port: the Envoy sidecar answers it, or the runtime itself when it admits
requests (``max_concurrency``); 503 from the drain's start. The load balancer's health check."""
METRICS_PORT = 15000
"""The pod's metrics port: the Envoy sidecar's metrics listener, or the runtime's ``metrics_port``."""
RUNTIME_METRICS_PORT_NAME = "cortex-metrics"
"""The container port name of the runtime's metrics port in a pod without a sidecar; the
``cortex-runtime`` scrape job keeps only pod ports of this name."""
RUNTIME_METRICS_PATH = "/metrics"
"""Where the runtime serves its Prometheus metrics."""

JOB_ID_HEADER = "X-Cortex-Job-ID"
"""Header of every batch (and of the end-of-job call) a BatchAPI's worker POSTs to its app."""
ON_JOB_COMPLETE_PATH = "/on-job-complete"
"""Where a BatchAPI's worker POSTs the job's end, once (``RuntimeConfig.on_job_complete``)."""


def _require(ok: bool, name: str, value: object, rule: str) -> None:
    if not ok:
        raise RuntimeConfigError(f"{name}: {value!r} is not allowed ({rule})")


def parse_int(raw: str) -> int:
    """A ``CORTEX_*`` value as an int (ValueError with the message the config errors end with)."""
    try:
        return int(raw)
    except ValueError:
        raise ValueError("Not a valid int.") from None


def parse_float(raw: str) -> float:
    """A ``CORTEX_*`` value as a number of seconds."""
    try:
        return float(raw)
    except ValueError:
        raise ValueError("Not a valid number of seconds.") from None


def parse_object(raw: str) -> dict[str, Any]:
    """A ``CORTEX_*`` value holding a JSON object."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"Not valid JSON: {error}.") from None
    if not isinstance(value, dict):
        raise ValueError("Not a JSON object.")  # noqa: TRY004 - a bad value of the variable, like the others
    return value


def parse_bool(raw: str) -> bool:
    """A ``CORTEX_*`` value of ``true`` or ``false``."""
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise ValueError("Must be true or false.")


def parse_string_list(raw: str) -> tuple[str, ...]:
    """A ``CORTEX_*`` value holding a JSON list of strings."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"Not valid JSON: {error}.") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("Not a JSON list of strings.")
    return tuple(value)


# The admission settings of a pod without a sidecar: left out of a pod's environment at their
# defaults, so the other pods' variables stay what they were.
_WRITTEN_ONLY_WHEN_SET = frozenset({"max_queue_length", "retry_after", "request_headers_timeout", "keep_alive",
                                    "drain_seconds", "drain_quiet_seconds"})
_DEFAULTS = {f.name: f.default for f in fields(RuntimeConfig)}

_ENV_PARSERS: dict[str, Callable[[str], Any]] = {
    "handler_config": parse_object,
    "threads_per_process": parse_int,
    "max_batch_size": parse_int,
    "batch_interval": parse_float,
    "host": str,
    "port": parse_int,
    "max_body_bytes": parse_int,
    "grace_period": parse_float,
    "python_requirements": parse_string_list,
    "packages_dir": str,
    "log_level": str.lower,
    "max_concurrency": parse_int,
    "max_queue_length": parse_int,
    "request_timeout": parse_float,
    "retry_after": parse_int,
    "metrics_port": parse_int,
    "max_connections": parse_int,
    "request_headers_timeout": parse_float,
    "keep_alive": parse_float,
    "drain_seconds": parse_float,
    "drain_quiet_seconds": parse_float,
    "on_job_complete": parse_bool,
}
