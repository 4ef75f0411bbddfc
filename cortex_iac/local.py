"""``cortex serve API_FILE``: one RealtimeAPI on localhost, run the way its pod runs it (an AsyncAPI:
see :mod:`cortex_iac.queue.serve`; a BatchAPI or TaskAPI: :mod:`cortex_iac.jobs.serve`).

The runtime runs as its own process (``python -m cortex_iac.serving``, the pod's command, configured
by the same ``CORTEX_*`` variables). A handler API's pod has no sidecar: the runtime admits requests
itself (``max_concurrency``, ``max_queue_length`` and their 503s, the request timeout, the in-flight
metrics, the drain), so locally it runs exactly as deployed, with local ports.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from cortex_iac.errors import CortexError
from cortex_iac.runtime_contract import READINESS_PATH, RUNTIME_METRICS_PATH

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
    printed once the handler is ready; on Ctrl-C/SIGTERM the runtime drains as a pod does (readiness
    fails, it accepts until clients stop connecting, accepted requests finish). Returns the exit code: 0 after a drain, the runtime's code if it failed (1 for a
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

    _check_port_free(port)  # before anything starts: a second `cortex serve` must not share the port
    from cortex_iac.render.realtime import direct_traffic
    from cortex_iac.render.workload import HandlerContainer, runtime_config
    from cortex_iac.runtime_contract import DRAIN_MAX_SECONDS

    metrics_port = free_port()
    direct = direct_traffic(api, port=port, metrics_port=metrics_port)
    assert direct is not None  # serve_api serves handler APIs only
    index = api.pod.containers.index(container)
    # The pod's own runtime settings (its limits and drain), with this machine's file, host and ports.
    # No load balancer deregisters this process: after readiness fails, it accepts until clients stop
    # opening connections (QUIET_SECONDS), then what was accepted finishes, as in a pod.
    config = runtime_config(
        api, HandlerContainer(index=index, container=container, image="", config_map={}), _local_shutdown(),
        **{**direct.settings, "drain_seconds": 0.0, "drain_quiet_seconds": QUIET_SECONDS,
           "grace_period": DRAIN_MAX_SECONDS + api.pod.request_timeout + GRACE_PERIOD_SECONDS},
        handler_path=str(handler_path), host="127.0.0.1", python_requirements=(),
    )
    env = {**_own_environment(), **config.to_env(), **container.env}
    # Its own session: a terminal's Ctrl-C reaches only this process, which then drains the runtime.
    runtime = subprocess.Popen([sys.executable, "-m", "cortex_iac.serving"], env=env, start_new_session=True)
    stop = _StopSignal()
    try:
        if _wait_ready(port, runtime, stop):
            _print_banner(api, port, metrics_port)
            while not stop.requested and runtime.poll() is None:
                time.sleep(0.1)
        return terminate(runtime, config.grace_period + 5)
    finally:
        stop.restore()
        if runtime.poll() is None:
            runtime.kill()
            runtime.wait()


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
    env = {**_own_environment(), **config.to_env(), **container.env}
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


# Locally there is no load balancer to deregister from: the clients themselves must go away. After
# readiness fails (every answer then carries `Connection: close`), the runtime keeps accepting until no
# new connection has come for QUIET_SECONDS (at most DRAIN_MAX_SECONDS), so closing the listener
# resets no connection a client already opened. Then what was accepted finishes, as in a pod.
QUIET_SECONDS = 1.0


def _own_environment() -> dict[str, str]:
    """This shell's environment without its ``CORTEX_*`` variables: the runtime's settings are the
    pod's (``RuntimeConfig.to_env`` leaves some defaults out, which a stale variable would override)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("CORTEX_")}


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not count
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise ServeError(f"port {port} on 127.0.0.1 is in use ({error.strerror}); nothing was started: "
                             "stop what listens there or choose another port with --port") from None


def _wait_ready(port: int, runtime: subprocess.Popen[bytes], stop: _StopSignal) -> bool:
    """Poll the runtime's readiness until 200; False if it exits or a stop signal comes first."""
    while not stop.requested and runtime.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{READINESS_PATH}", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def _print_banner(api: RealtimeApiSpec, port: int, metrics_port: int) -> None:
    print(f"{api.name}: serving on http://127.0.0.1:{port}/  (Ctrl-C to stop)", flush=True)
    print(
        f"  max_concurrency {api.pod.max_concurrency}, max_queue_length {api.pod.max_queue_length}, "
        f"request_timeout {api.pod.request_timeout} s; metrics on http://127.0.0.1:{metrics_port}{RUNTIME_METRICS_PATH}",
        flush=True,
    )


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
