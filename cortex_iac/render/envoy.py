"""The Envoy sidecar of a RealtimeAPI pod: bootstrap config, command line, shutdown and metric.

Cortex put a proxy in front of every API container. It lets ``max_concurrency`` requests reach the
container at once, queues ``max_queue_length`` more, answers 503 at once beyond that, and reports
the pod's in-flight count (processing + queued), which the autoscaler averages over ``window``.
Here that proxy is Envoy, configured statically by :func:`envoy_config`:

* listener ``ingress`` on ``listen_port`` (8888): every request goes to the app on
  ``app_address:app_port``, except :data:`READINESS_PATH`, which Envoy answers itself (200, or 503
  once the pod has started shutting down, see :func:`drain_plan`);
* listener ``metrics`` on ``metrics_port`` (15000): only ``GET /stats/prometheus``, passed to the
  admin interface, so the admin's mutating endpoints (``/quitquitquit``, ``/healthcheck/fail``,
  ``/drain_listeners``...) are never reachable from outside the pod;
* admin interface on ``127.0.0.1:admin_port`` (15001) only, for the pod's own preStop hook.

Envoy must run with :func:`envoy_args` (one worker thread; see there why).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cortex_iac import _yaml
from cortex_iac.errors import CortexError

# The pod's readiness path and metrics port are the contract's: the runtime serves them too, in a pod
# without the sidecar. Re-exported here, where the sidecar's other ports are.
from cortex_iac.runtime_contract import METRICS_PORT as METRICS_PORT
from cortex_iac.runtime_contract import READINESS_PATH as READINESS_PATH
from cortex_iac.runtime_contract import RUNTIME_METRICS_PATH, RUNTIME_METRICS_PORT_NAME

LISTEN_PORT = 8888
ADMIN_PORT = 15001
# Envoy closes an idle connection to the app after this long, before the app can close it: an app
# closing an idle connection just as Envoy reuses it would fail that request (the keep-alive race).
# 1 s is below every common server's keep-alive (gunicorn 2 s, uvicorn 5 s, the serving runtime 75 s,
# Node 5 s); the cost is a new loopback connection for a request after a pause of over 1 s.
UPSTREAM_IDLE_TIMEOUT_SECONDS = 1.0
# Bodies are buffered whole before a request may take an app slot (see envoy_config); larger ones
# get 413. The serving runtime's own default limit is the same 10 MiB.
DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024
# Connections one pod's Envoy accepts at once; more wait in the kernel's accept queue.
DEFAULT_MAX_CONNECTIONS = 1024
# A client has this long to send a request's headers.
REQUEST_HEADERS_TIMEOUT_SECONDS = 10
# What a queue-full 503 tells the client to wait before retrying (the Retry-After header).
DEFAULT_RETRY_AFTER_SECONDS = 1
METRICS_PATH = "/stats/prometheus"
# Answered 200 by Envoy itself on the metrics listener: the liveness probe of the sidecar and the
# router. That listener runs on the worker threads that serve the traffic listener, so a hung
# worker fails it (the admin runs on the main thread and would not notice), and it keeps answering
# while the traffic listener drains (the preStop drains INBOUND listeners only).
LIVENESS_PATH = "/-/live"
# The uid/gid Envoy runs as in the pod (the image's own envoy user is 101). Envoy needs no file of
# its own: it reads its config from a read-only ConfigMap mount and logs to stdout, so any uid works;
# a high one cannot coincide with a system account of the node (uids below 1000 are those), and it
# matches the serving runtime's 10001.
ENVOY_UID = 10101
# Name of the Envoy container's metrics port in the pod spec; the Prometheus scrape job keeps only
# pod ports of this name, so no other container port of an API pod is ever scraped.
METRICS_PORT_NAME = "envoy-metrics"
# Pod label carrying the API's name; the Deployment renderer must set it on every API pod.
API_NAME_LABEL = "cortex.dev/api-name"
# The spec's default pod.request_timeout (cortex_iac.specs.pod): the shared load balancer's idle timeout.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 60
# How long a terminating pod keeps serving new requests: the time the AWS load balancer and the
# Service endpoints take to stop routing to it after it is marked terminating / not ready.
DEFAULT_DEREGISTRATION_SECONDS = 15

_APP_CLUSTER = "app"
_ADMIN_CLUSTER = "admin"
_INGRESS = "ingress"
_METRICS = "metrics"
# Prometheus names of the two per-pod gauges whose sum is the pod's in-flight count.
_INFLIGHT_METRICS = ("envoy_cluster_upstream_rq_active", "envoy_cluster_upstream_rq_pending_active")
# Per-cluster requests and outcomes, kept too: a TrafficSplitter router's clusters are its target
# APIs (render/splitter.py), so these are its requests per target and its shadow's answers; in an API
# pod they tell queue-full 503s (pending_overflow) from the app's own 5xx.
_REQUEST_METRICS = ("envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_xx",
                    "envoy_cluster_upstream_rq_timeout", "envoy_cluster_upstream_rq_pending_overflow",
                    "envoy_cluster_upstream_cx_connect_fail")
# The latency histogram (milliseconds) of the app cluster, queueing in Envoy included (measured with
# Envoy 1.40: one slot, three 1 s requests at once give 1, 2 and 3 s); probes Envoy answers itself
# are not in it. The dashboards' and alerts' percentiles (render/observability/queries.py).
_LATENCY_METRICS = ("envoy_cluster_upstream_rq_time_bucket", "envoy_cluster_upstream_rq_time_sum",
                    "envoy_cluster_upstream_rq_time_count")
# After the drain wait, SIGTERM makes Envoy exit at once; this is the slack for that exit.
_EXIT_SECONDS = 5
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_TYPE = "type.googleapis.com/envoy.extensions.filters"


def envoy_config(
    *,
    app_port: int,
    max_concurrency: int,
    max_queue_length: int,
    listen_port: int = LISTEN_PORT,
    metrics_port: int = METRICS_PORT,
    admin_port: int = ADMIN_PORT,
    listen_address: str = "0.0.0.0",
    app_address: str = "127.0.0.1",
    request_timeout_seconds: int = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    upstream_idle_timeout_seconds: float = UPSTREAM_IDLE_TIMEOUT_SECONDS,
    retry_after_seconds: int = DEFAULT_RETRY_AFTER_SECONDS,
) -> dict[str, Any]:
    """Envoy v3 bootstrap (static resources only) of one API pod's sidecar.

    Slow clients cannot hold the app's capacity: a request's body is buffered whole (at most
    ``max_request_bytes``, else 413) before it is routed, so it counts against ``max_concurrency``
    and ``max_queue_length`` only once it can be served; headers must arrive within
    :data:`REQUEST_HEADERS_TIMEOUT_SECONDS`; at most ``max_connections`` connections are open at
    once. Responses are not buffered (streams, SSE and chunked answers pass as they come).
    A queue-full 503 carries ``Retry-After: retry_after_seconds`` and the response flag ``UO``
    (counter ``upstream_rq_pending_overflow``), which tells it apart from the app's own 5xx.

    ``app_port``: the user container's port (``pod.port``). ``max_concurrency`` (>= 1) requests
    reach it at once, ``max_queue_length`` (>= 0) more wait in Envoy, any further request gets 503
    at once. ``request_timeout_seconds`` (default 300, the spec's ``pod.request_timeout``) bounds a
    request's time in Envoy from the moment it is fully received, queueing included (then 504); it
    also bounds the shutdown drain (:func:`drain_plan` takes the same value).
    Ports default to 8888 (traffic), 15000 (metrics) and 15001 (admin, loopback only).

    The limits are exact once Envoy holds its connections to the app. While a connection is still
    being opened (the first requests after start, or after the app closed idle connections), the
    request waiting for it takes a queue slot, so a burst arriving in that instant can find up to
    ``max_concurrency`` fewer queue slots: it may be admitted less, never more. The app should
    therefore keep idle keep-alive connections open (uvicorn: a long ``timeout_keep_alive``).

    Retries: a request is retried once (Envoy's ``reset-before-request``) when its connection to the
    app failed before the request was written to it, e.g. the app refused or did not accept the
    connection. A request written to a connection is never retried, whatever happens next (it may
    have reached the app; model requests are rarely idempotent), and clients cannot ask for more
    (Envoy drops their ``x-envoy-retry-on`` / ``x-envoy-max-retries`` headers, see ``_listener``).
    This does not cover the keep-alive race, where the app closes an idle connection just as Envoy
    writes a request to it: that request was written, so it is not retried and gets 503. Measured
    with Envoy 1.40 against an app closing idle connections after 30 ms and requests sent at that
    moment: the same 503 rate (about 10 %) with and without the policy, and no retry. What prevents
    the race is Envoy closing idle connections first: ``upstream_idle_timeout_seconds`` (default
    :data:`UPSTREAM_IDLE_TIMEOUT_SECONDS`) must be below the app's keep-alive.
    """
    _check_range("max_concurrency", max_concurrency, 1, 2**32 - 1)
    _check_range("max_queue_length", max_queue_length, 0, 2**32 - 1)
    _check_range("request_timeout_seconds", request_timeout_seconds, 1, 24 * 3600)
    _check_range("max_request_bytes", max_request_bytes, 1, 2**32 - 1)
    _check_range("max_connections", max_connections, 1, 2**32 - 1)
    _check_range("retry_after_seconds", retry_after_seconds, 0, 3600)
    if not 0 < upstream_idle_timeout_seconds <= 3600:
        raise CortexError(f"envoy upstream_idle_timeout_seconds: {upstream_idle_timeout_seconds!r} is not allowed "
                          "(must be in (0, 3600])")
    ports = {"app_port": app_port, "listen_port": listen_port, "metrics_port": metrics_port,
             "admin_port": admin_port}
    for name, port in ports.items():
        _check_range(name, port, 1, 65535)
    if len(set(ports.values())) != len(ports):
        raise CortexError(f"envoy ports must be distinct, got {ports}")

    ingress_routes = [{
        "match": {"prefix": "/"},
        "route": {
            "cluster": _APP_CLUSTER,
            "timeout": f"{request_timeout_seconds}s",
            # Only what never reached the app (see the docstring); the route timeout covers the retry.
            "retry_policy": {"retry_on": "reset-before-request", "num_retries": 1},
        },
    }]
    readiness = readiness_filter()
    # The whole body first: only a complete request may wait for, or take, an app slot.
    buffer = {
        "name": "envoy.filters.http.buffer",
        "typed_config": {"@type": f"{_TYPE}.http.buffer.v3.Buffer", "max_request_bytes": max_request_bytes},
    }
    metrics_routes = metrics_listener_routes(_ADMIN_CLUSTER)
    return {
        "admin": {"address": _socket_address("127.0.0.1", admin_port)},
        "static_resources": {
            "listeners": [
                # INBOUND so that the preStop's `drain_listeners?inboundonly` stops accepting here
                # while the metrics listener keeps reporting the drain to Prometheus.
                _listener(_INGRESS, listen_address, listen_port, ingress_routes, [readiness, buffer],
                          traffic_direction="INBOUND", max_connections=max_connections,
                          request_headers_timeout_seconds=REQUEST_HEADERS_TIMEOUT_SECONDS,
                          retry_after_seconds=retry_after_seconds),
                _listener(_METRICS, listen_address, metrics_port, metrics_routes, []),
            ],
            "clusters": [
                _cluster(_APP_CLUSTER, app_address, app_port, _circuit_breakers(
                    max_concurrency, max_queue_length), idle_timeout_seconds=upstream_idle_timeout_seconds),
                _cluster(_ADMIN_CLUSTER, "127.0.0.1", admin_port, None),
            ],
        },
    }


def readiness_filter() -> dict[str, Any]:
    """The HTTP filter answering :data:`READINESS_PATH` itself: 200 until ``/healthcheck/fail`` is
    posted to the admin (the drain's first step), then 503. API sidecars and splitter routers share it."""
    return {
        "name": "envoy.filters.http.health_check",
        "typed_config": {
            "@type": f"{_TYPE}.http.health_check.v3.HealthCheck",
            "pass_through_mode": False,
            "headers": [{"name": ":path", "string_match": {"exact": READINESS_PATH}}],
        },
    }


def _circuit_breakers(max_concurrency: int, max_queue_length: int) -> dict[str, Any]:
    # The upstream speaks HTTP/1.1, where one connection carries one request at a time. Envoy's
    # HTTP/1.1 pool queues a request as "pending" when no idle connection exists, and opens a new
    # connection for it unless `max_connections` is reached. So the concurrency limit has to be
    # `max_connections` = max_concurrency: request max_concurrency+1 waits for a connection to come
    # free. `max_pending_requests` bounds that wait list; once it is full the pool fails a request
    # with 503 at once (response flag UO, counter upstream_rq_pending_overflow). `max_requests`
    # (active requests, the limit HTTP/2 would need) is the same bound, a second guard.
    # A request also counts as pending while the connection it will use is being opened (a
    # loopback round trip, after start or after the app closed idle connections), so with no
    # queue at all every first request would overflow. max_queue_length 0 therefore limits on
    # `max_requests` instead: a request that finds all max_concurrency busy waits only for one
    # spare connection to open (max_connections + 1) and is then refused with 503, and the
    # pending list (max_concurrency) only holds requests while their connections open.
    # `max_retries` bounds the retries in progress at once: each of the max_concurrency connections
    # being opened may fail and be retried once (the route's policy retries nothing else).
    # The limits are cluster-wide, but Envoy lets every worker's pool open one connection even
    # above `max_connections` (so no pending request waits on a pool without connections); hence
    # exactly one worker, see envoy_args().
    if max_queue_length == 0:
        connections, pending = max_concurrency + 1, max_concurrency
    else:
        connections, pending = max_concurrency, max_queue_length
    return {"thresholds": [{
        "priority": "DEFAULT",
        "max_connections": connections,
        "max_pending_requests": pending,
        "max_requests": max_concurrency,
        "max_retries": max_concurrency,
    }]}


def _listener(name: str, address: str, port: int, routes: list[dict[str, Any]],
              filters: list[dict[str, Any]], *, traffic_direction: str | None = None,
              max_connections: int | None = None, request_headers_timeout_seconds: int | None = None,
              retry_after_seconds: int | None = None) -> dict[str, Any]:
    manager = {
        "@type": f"{_TYPE}.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name,
        # Clients are not trusted: the socket peer (the load balancer or the client) decides whether
        # a request is internal, and since Envoy 1.33 no address is internal unless configured, so
        # the x-envoy-* request headers that would change the route timeout are stripped. (An
        # explicit but empty internal_address_config brings back the old private-range default.)
        # The same goes for the x-envoy-retry-on / x-envoy-max-retries headers that would widen the
        # route's retry policy (tests/live/test_retries.py sends them).
        "use_remote_address": True,
        "route_config": {"name": name, "virtual_hosts": [
            {"name": name, "domains": ["*"], "routes": routes}]},
        "http_filters": [*filters, {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": f"{_TYPE}.http.router.v3.Router"},
        }],
    }
    if request_headers_timeout_seconds is not None:
        manager["request_headers_timeout"] = f"{request_headers_timeout_seconds}s"
    if retry_after_seconds is not None:
        # Queue full (the pool's overflow, response flag UO): say when to come back.
        manager["local_reply_config"] = {"mappers": [{
            "filter": {"response_flag_filter": {"flags": ["UO"]}},
            "headers_to_add": [{"header": {"key": "retry-after", "value": str(retry_after_seconds)},
                                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
        }]}
    network_filters: list[dict[str, Any]] = []
    if max_connections is not None:
        network_filters.append({
            "name": "envoy.filters.network.connection_limit",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit",
                "stat_prefix": name,
                "max_connections": max_connections,
            },
        })
    listener: dict[str, Any] = {
        "name": name,
        "address": _socket_address(address, port),
        "filter_chains": [{"filters": [*network_filters, {
            "name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}],
    }
    if traffic_direction is not None:
        listener["traffic_direction"] = traffic_direction
    return listener


def _cluster(name: str, address: str, port: int, circuit_breakers: dict[str, Any] | None,
             *, idle_timeout_seconds: float = UPSTREAM_IDLE_TIMEOUT_SECONDS) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": _socket_address(address, port)}}]}]},
    }
    if circuit_breakers is not None:
        cluster["circuit_breakers"] = circuit_breakers
        # Close idle upstream connections before the app does, so Envoy never reuses one the app is
        # closing, which would answer 503 (see UPSTREAM_IDLE_TIMEOUT_SECONDS).
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "common_http_protocol_options": {"idle_timeout": _seconds(idle_timeout_seconds)},
                "explicit_http_config": {"http_protocol_options": {}},
            }
        }
    return cluster


def _seconds(value: float) -> str:
    """A protobuf Duration in seconds, e.g. ``1s`` or ``0.25s``."""
    return f"{int(value)}s" if float(value).is_integer() else f"{value:.3f}".rstrip("0") + "s"


def _socket_address(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CortexError(f"envoy {name}: {value!r} is not allowed (must be an integer in "
                          f"[{low}, {high}])")


def render_envoy_yaml(config: dict[str, Any]) -> str:
    """``config`` as YAML with sorted keys: the same config always gives the same bytes, so the
    ConfigMap's checksum (which rolls the pods) changes only when the config does."""
    return _yaml.dump(config)


def envoy_args(config_path: str) -> list[str]:
    """Envoy's command-line arguments (after the ``envoy`` executable) for ``config_path``.

    ``--concurrency 1``: one worker thread, so the circuit breakers are exact (with N workers the
    app could see up to max_concurrency + N - 1 connections, see envoy_config); one worker
    proxies far more requests per second than a model container serves.
    ``--disable-hot-restart``: pods are replaced, never hot-restarted, and without it two Envoys on
    one host (tests) would share a shared-memory segment.
    """
    return ["-c", config_path, "--concurrency", "1", "--disable-hot-restart", "--log-level", "warn"]


@dataclass(frozen=True)
class DrainPlan:
    """How an API pod shuts down without failing a request it accepted.

    On pod deletion the kubelet runs every container's preStop hook, then sends it SIGTERM, and
    kills what still runs ``termination_grace_period_seconds`` after deletion. Envoy exits at once
    on SIGTERM, dropping whatever it still holds, so its preStop hook
    (``envoy_prestop_command``, a bash script talking to the loopback admin; the Envoy image has
    bash but no curl) does the draining first:

    1. ``POST /healthcheck/fail``: :data:`READINESS_PATH` answers 503 (load balancer health checks
       fail) and every HTTP/1.1 response carries ``Connection: close``, so clients stop reusing
       their connections to this pod. Everything is still served.
    2. Sleep ``deregistration_seconds`` while the load balancer and the Service endpoints stop
       sending: requests arriving meanwhile are accepted and served normally.
    3. ``POST /drain_listeners?inboundonly``: the traffic listener stops accepting connections. A
       late client gets a refused connection, or a reset one if it was still in the kernel's
       accept queue: either way Envoy never read its request, which the load balancer can retry
       on another pod.
    4. Poll ``http.ingress.downstream_rq_active`` every second until it is 0, at most
       ``drain_timeout_seconds`` (the request timeout + 1: every accepted request, queued ones
       included, ends by then, once fully received; a request still uploading its body after
       that is cut at SIGTERM).
    5. Return; the kubelet's SIGTERM then stops Envoy with nothing in flight.

    The app containers must outlive this: their preStop must last ``app_prestop_sleep_seconds``
    (a ``lifecycle.preStop.sleep``, or a user's exec hook run after that sleep, see
    ``cortex_iac.render.realtime``), otherwise queued requests would find no app to go to.
    """

    deregistration_seconds: int
    drain_timeout_seconds: int
    app_prestop_sleep_seconds: int
    termination_grace_period_seconds: int
    envoy_prestop_command: list[str]


def metrics_listener_routes(admin_cluster: str) -> list[dict[str, Any]]:
    """The metrics listener's routes: ``GET`` :data:`METRICS_PATH` from the admin (through
    ``admin_cluster``), ``GET`` :data:`LIVENESS_PATH` answered 200 by Envoy itself, 404 for the rest."""
    get = [{"name": ":method", "string_match": {"exact": "GET"}}]
    return [
        {"match": {"path": METRICS_PATH, "headers": get}, "route": {"cluster": admin_cluster}},
        {"match": {"path": LIVENESS_PATH, "headers": get}, "direct_response": {"status": 200}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
    ]


def liveness_probe(metrics_port: int = METRICS_PORT) -> dict[str, Any]:
    """The Envoy container's liveness probe: ``GET`` :data:`LIVENESS_PATH` on the metrics listener
    over the pod's loopback, from inside the container (bash's /dev/tcp: the image has no curl), so
    it does not depend on the kubelet reaching a port the namespace's NetworkPolicy admits only from
    Prometheus. Three failures 10 s apart restart Envoy; a drain does not fail it."""
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{metrics_port} && "
        f"printf 'GET {LIVENESS_PATH} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && "
        "IFS= read -r status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"
    )
    return {
        "exec": {"command": ["/bin/bash", "-c", script]},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def drain_plan(
    *,
    request_timeout_seconds: int = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    deregistration_seconds: int = DEFAULT_DEREGISTRATION_SECONDS,
    admin_port: int = ADMIN_PORT,
) -> DrainPlan:
    """The :class:`DrainPlan` for a sidecar rendered with the same ``request_timeout_seconds``
    (default 300) and ``admin_port`` (default 15001); ``deregistration_seconds`` defaults to 15.
    With the defaults: preStop up to 15 + 301 s, terminationGracePeriodSeconds 321."""
    _check_range("request_timeout_seconds", request_timeout_seconds, 1, 24 * 3600)
    _check_range("deregistration_seconds", deregistration_seconds, 0, 3600)
    _check_range("admin_port", admin_port, 1, 65535)
    drain_timeout = request_timeout_seconds + 1
    line = f"http.{_INGRESS}.downstream_rq_active: 0"
    script = f"""set -u
admin() {{
  exec 3<>/dev/tcp/127.0.0.1/{admin_port} || return 1
  printf '%s %s HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' "$1" "$2" >&3
  while IFS= read -r line || [[ -n $line ]]; do printf '%s\\n' "$line"; done <&3
  exec 3<&-
}}
admin POST /healthcheck/fail >/dev/null
sleep {deregistration_seconds}
admin POST '/drain_listeners?inboundonly' >/dev/null
for ((i = 0; i < {drain_timeout}; i++)); do
  stats=$(admin GET '/stats?filter=http.{_INGRESS}.downstream_rq_active') || exit 0
  [[ $'\\n'$stats$'\\n' == *$'\\n{line}\\n'* ]] && exit 0
  sleep 1
done
exit 1
"""
    return DrainPlan(
        deregistration_seconds=deregistration_seconds,
        drain_timeout_seconds=drain_timeout,
        app_prestop_sleep_seconds=deregistration_seconds + drain_timeout,
        termination_grace_period_seconds=deregistration_seconds + drain_timeout + _EXIT_SECONDS,
        envoy_prestop_command=["/bin/bash", "-c", script],
    )


def inflight_query(namespace: str, api_name: str, window_seconds: int) -> str:
    """PromQL of the API's total in-flight requests (processing + queued, all its pods) averaged
    over the last ``window_seconds``.

    Per pod the in-flight count is, in a pod with the Envoy sidecar, Envoy's ``upstream_rq_active +
    upstream_rq_pending_active`` of the app cluster, and in a pod without it (a handler API, where
    the serving runtime admits requests itself) the runtime's ``cortex_requests_in_flight``. One
    selector reads all three gauges: ``envoy_cluster_name=~"app|"`` keeps Envoy's app cluster and
    the runtime's series, which have no such label (a TrafficSplitter router's clusters are named
    after its targets and never match). So an API whose pods are mid-rollout between the two
    shapes counts every pod, whichever shape. The total is summed at every second of the window (a
    subquery, each pod contributing its latest sample) and those totals are averaged: a time
    average of the total that does not depend on how the pods' scrapes are phased, and in which a
    pod counts only for the part of the window it existed in (Prometheus marks a vanished pod's
    series stale). Cortex's own ``sum(sum_over_time) / max(count_over_time)`` is off by up to a
    sample per pod when scrapes are not aligned. Relies on the ``namespace`` and ``api`` labels
    that :func:`prometheus_scrape_job` and :func:`runtime_scrape_job` set. No pod scraped gives an
    empty result (KEDA reads 0).
    """
    for name, value in (("namespace", namespace), ("api_name", api_name)):
        if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.fullmatch(value):
            raise CortexError(f"inflight_query {name}: {value!r} is not a DNS label "
                              "(lowercase letters, digits and '-', at most 63 characters)")
    _check_range("window_seconds", window_seconds, 1, 24 * 3600)
    names = "|".join((*_INFLIGHT_METRICS, RUNTIME_INFLIGHT_METRIC))
    selector = (f'{{__name__=~"{names}",namespace="{namespace}",'
                f'api="{api_name}",envoy_cluster_name=~"{_APP_CLUSTER}|"}}')
    return f"avg_over_time(sum({selector})[{window_seconds}s:1s])"


def _api_pod_relabels(port_name: str) -> list[dict[str, Any]]:
    """Pod discovery's relabelling of the API scrape jobs: only pods labelled :data:`API_NAME_LABEL`
    and their container port named ``port_name``; labels ``namespace``, ``pod`` and ``api``."""
    api_label = "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", API_NAME_LABEL)
    return [
        {"source_labels": [api_label], "regex": ".+", "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": port_name, "action": "keep"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": [api_label], "target_label": "api"},
    ]


def _api_scrape_job(job_name: str, path: str, port_name: str, metrics: tuple[str, ...]) -> dict[str, Any]:
    """A scrape job of the API pods' container ports named ``port_name`` at ``path`` (pod discovery,
    :func:`_api_pod_relabels`), storing only ``metrics``."""
    return {
        "job_name": job_name,
        "kubernetes_sd_configs": [{"role": "pod"}],
        "metrics_path": path,
        "relabel_configs": _api_pod_relabels(port_name),
        "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": "|".join(metrics), "action": "keep"}],
    }


def prometheus_scrape_job(job_name: str = "cortex-envoy") -> dict[str, Any]:
    """Prometheus scrape job for every API pod's Envoy, found by Kubernetes pod discovery.

    Keeps only pods labelled :data:`API_NAME_LABEL`, and of those only the container port named
    :data:`METRICS_PORT_NAME`; scrapes :data:`METRICS_PATH`; sets the labels ``namespace``, ``pod``
    and ``api`` (the API's name) that :func:`inflight_query` selects on; stores only the in-flight
    gauges, the per-cluster request and outcome counters and the latency histogram (an Envoy exports
    hundreds of series). ``job_name`` defaults to ``cortex-envoy``. The pods without a sidecar are
    :func:`runtime_scrape_job`'s.
    """
    return _api_scrape_job(job_name, METRICS_PATH, METRICS_PORT_NAME,
                           _INFLIGHT_METRICS + _REQUEST_METRICS + _LATENCY_METRICS)


# The serving runtime's metrics in a pod without the sidecar (it admits requests itself):
# requests answered by method and status (queue-full 503s included, as Envoy's upstream_rq_xx counts
# its overflows), the queue-full 503s alone (Envoy's upstream_rq_pending_overflow), the in-flight
# gauge (processing + queued: Envoy's upstream_rq_active + upstream_rq_pending_active) and the
# latency histogram in SECONDS from full receipt to answer, queueing included (Envoy's
# upstream_rq_time, in milliseconds). prometheus_client's *_created series are dropped.
RUNTIME_INFLIGHT_METRIC = "cortex_requests_in_flight"
RUNTIME_METRICS = ("cortex_requests_total", "cortex_requests_rejected_total", RUNTIME_INFLIGHT_METRIC,
                   "cortex_request_duration_seconds_bucket", "cortex_request_duration_seconds_sum",
                   "cortex_request_duration_seconds_count")


def runtime_scrape_job(job_name: str = "cortex-runtime") -> dict[str, Any]:
    """Prometheus scrape job for the serving runtime of every API pod without an Envoy sidecar.

    The same pod discovery and labels (``namespace``, ``pod``, ``api``) as
    :func:`prometheus_scrape_job`, but keeps only the container port named
    :data:`~cortex_iac.runtime_contract.RUNTIME_METRICS_PORT_NAME` (a pod with a sidecar has none,
    so no pod is scraped by both jobs), scrapes
    :data:`~cortex_iac.runtime_contract.RUNTIME_METRICS_PATH` and stores only
    :data:`RUNTIME_METRICS`. ``job_name`` defaults to ``cortex-runtime``.
    """
    return _api_scrape_job(job_name, RUNTIME_METRICS_PATH, RUNTIME_METRICS_PORT_NAME, RUNTIME_METRICS)
