"""The `pod` section of an API spec: containers, their compute requests, probes and hooks.

Field names and defaults are Cortex v0.42's (docs/workloads/*/configuration.md and
pkg/types/spec/validations.go). Which kinds accept which of these fields is checked by the API
models (`cortex_iac.specs.api`), since one pod model serves all four workload kinds.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, PrivateAttr, ValidationInfo, model_validator

from cortex_iac.specs.base import NonEmptyStr, Port, SpecModel, dns_label, rule, written
from cortex_iac.specs.duration import DURATION_SCHEMA, duration_rule
from cortex_iac.specs.image import IMAGE_REQUIREMENT, is_image_reference
from cortex_iac.specs.problems import MISSING, Problems, rule_error
from cortex_iac.specs.quantity import Quantity

MIN_CPU = Quantity.parse("20m")
MIN_MEM = Quantity.parse("20Mi")
# The memory request of a container without compute.mem (no limit then). Without any request the
# scheduler counts such a container as using no memory, packs it onto a node regardless, and it is
# the first evicted under node memory pressure. 256Mi covers the serving runtime at rest (about
# 150 MB RSS with a small handler, docs/benchmarks.md) with room for a small model; a model that
# needs more sets mem (request = limit).
DEFAULT_MEM_REQUEST = Quantity.parse("256Mi")
DEFAULT_CPU = Quantity.parse("200m")
# Cortex's own sidecars; ours is named after one of them.
RESERVED_CONTAINER_NAMES = ("dequeuer", "proxy")

# Longest pod.request_timeout: the shared load balancer's idle timeout (cortex_iac.render.routing.
# ALB_IDLE_TIMEOUT_SECONDS) and the KEDA HTTP interceptor's response header timeout (its default);
# a longer request would be cut there anyway.
MAX_REQUEST_TIMEOUT_SECONDS = 300
# The default: every deleted pod lives about this long plus 16 s (its drain), so the default keeps
# scale-downs and rollouts quick; APIs with long inferences raise it up to the maximum.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 60
RequestTimeout = Annotated[int, duration_rule(
    minimum=1,
    maximum=MAX_REQUEST_TIMEOUT_SECONDS,
    why=f"the shared load balancer and the KEDA HTTP interceptor end a request with no answer after "
    f"{MAX_REQUEST_TIMEOUT_SECONDS}s",
), DURATION_SCHEMA]

# Key of the validation context under which the loader passes the directory of the file being loaded.
SOURCE_DIR_CONTEXT = "source_dir"

# A handler file ships in a ConfigMap, which Kubernetes stores up to 1 MiB; the rest is room for the
# object's metadata. Its file name is the ConfigMap's key.
MAX_HANDLER_BYTES = 900 * 1024
_CONFIG_MAP_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_URL_PATH = re.compile(r"[a-zA-Z0-9_\-./]*")


def _canonical_path(path: str) -> str:
    return path if path.startswith("/") else "/" + path


HttpPath = Annotated[
    str,
    rule(
        lambda path: _URL_PATH.fullmatch(path) is not None and "//" not in path,
        "must be a URL path of letters, digits and _ - . / without '//'",
    ),
]


class HttpGetSpec(SpecModel):
    """An HTTP GET handler of a probe or hook: ``port`` and ``path``."""

    path: HttpPath = "/"
    """URL path to request: letters, digits, _ - . / without '//'; a leading / is added. Default /."""
    port: Port
    """Container port to request: 1 to 65535, except 8888, 15000 and 15001 (the sidecar proxy's). Required."""

    @model_validator(mode="after")
    def _leading_slash(self) -> HttpGetSpec:
        self.path = _canonical_path(self.path)
        return self


class TcpSocketSpec(SpecModel):
    """A TCP connect handler on ``port`` (required)."""

    port: Port
    """Container port to open a TCP connection to: 1 to 65535, except 8888, 15000 and 15001 (the sidecar
    proxy's). Required."""


class ExecSpec(SpecModel):
    """A command run inside the container, not in a shell (``command``, required, non-empty)."""

    command: Annotated[list[str], Field(min_length=1)]
    """The program and its arguments, run in the container without a shell; at least one item. Required."""


class ProbeSpec(SpecModel):
    """A readiness or liveness probe: exactly one of ``http_get``, ``tcp_socket``, ``exec``, and its
    timing. Deviation: Cortex let the last four timing fields be 0, which Kubernetes reads as "its
    default"; here they are >= 1 so the value written is the value used.
    """

    http_get: HttpGetSpec | None = None
    """Probe with an HTTP GET, passing on a 2xx or 3xx answer. Exactly one of http_get, tcp_socket and exec."""
    tcp_socket: TcpSocketSpec | None = None
    """Probe by opening a TCP connection, passing when it connects. Exactly one of http_get, tcp_socket and
    exec."""
    exec: ExecSpec | None = None
    """Probe by running a command, passing when it exits 0. Exactly one of http_get, tcp_socket and exec; in
    readiness probes, RealtimeAPI only."""
    initial_delay_seconds: int = Field(0, ge=0)
    """Seconds from the container's start to its first probe. Default 0, >= 0."""
    timeout_seconds: int = Field(1, ge=1)
    """Seconds a probe may take before it counts as failed. Default 1, >= 1 (Cortex allowed 0, read by
    Kubernetes as its default)."""
    period_seconds: int = Field(10, ge=1)
    """Seconds between two probes. Default 10, >= 1 (Cortex allowed 0, read by Kubernetes as its default)."""
    success_threshold: int = Field(1, ge=1)
    """Consecutive passes after a failure that count as healthy again. Default 1, >= 1 (Cortex allowed 0);
    must be 1 in a liveness probe."""
    failure_threshold: int = Field(3, ge=1)
    """Consecutive failures that count as unhealthy (not ready, or restarted for liveness). Default 3, >= 1
    (Cortex allowed 0)."""

    @model_validator(mode="after")
    def _one_handler(self) -> ProbeSpec:
        _exactly_one_handler(self, ("http_get", "tcp_socket", "exec"))
        return self


class PreStopSpec(SpecModel):
    """A pre-stop hook run before the container is stopped: exactly one of ``http_get``, ``exec``."""

    http_get: HttpGetSpec | None = None
    """An HTTP GET hook: refused for every kind, since Kubernetes sends it at once while the pod must keep
    serving its drain; use exec."""
    exec: ExecSpec | None = None
    """A command run in the container before it is stopped, after the pod has drained. Exactly one of http_get
    and exec."""

    @model_validator(mode="after")
    def _one_handler(self) -> PreStopSpec:
        _exactly_one_handler(self, ("http_get", "exec"))
        return self


def _exactly_one_handler(spec: SpecModel, handlers: tuple[str, ...]) -> None:
    given = [name for name in handlers if getattr(spec, name) is not None]
    if len(given) == 1:
        return
    problems = Problems()
    requirement = f"exactly one of {', '.join(handlers)} is needed"
    if given:
        for name in given[1:]:
            problems.add((name,), written(getattr(spec, name)), f"{requirement}; {given[0]} is already given")
    else:
        problems.add((handlers[0],), MISSING, requirement)
    problems.check()


class ComputeSpec(SpecModel):
    """Resource requests of one container: CPU, memory, NVIDIA GPUs or Inferentia chips (not both),
    and an in-memory /dev/shm. ``cpu: null`` asks for no CPU request, unlike the other nulls."""

    _KEEP_NULL: ClassVar[frozenset[str]] = frozenset({"cpu"})

    cpu: Annotated[Quantity | None, rule(lambda q: q is None or q >= MIN_CPU, "must be >= 20m")] = DEFAULT_CPU
    """CPU request of the container, a quantity in cores such as 200m or 1. Default 200m, at least 20m; null:
    no CPU request."""
    mem: Annotated[Quantity | None, rule(lambda q: q is None or q >= MIN_MEM, "must be >= 20Mi")] = None
    """Memory request and limit of the container, a quantity in bytes such as 512Mi or 2Gi. Default none (a
    256Mi request and no limit), at least 20Mi."""
    gpu: int = Field(0, ge=0)
    """NVIDIA GPUs of the container, a whole number. Default 0, >= 0; not with inf, in the container or the
    pod."""
    inf: int = Field(0, ge=0)
    """AWS Inferentia chips of the container (each with 128 huge pages of 2 MiB). Default 0, >= 0; not with
    gpu; needs cpu or mem."""
    shm: Annotated[Quantity | None, rule(lambda q: q is None or q.value > 0, "must be > 0")] = None
    """Size of an in-memory /dev/shm volume, a quantity in bytes such as 1Gi. Default none (no volume); > 0,
    at most mem."""

    @model_validator(mode="after")
    def _consistent(self) -> ComputeSpec:
        problems = Problems()
        if self.gpu and self.inf:
            problems.add(("inf",), self.inf, "cannot be combined with gpu: request GPUs or Inferentia chips")
        elif self.inf and self.cpu is None and self.mem is None:
            needs = "needs cpu or mem as well (Kubernetes refuses huge pages without a cpu or memory request)"
            problems.add(("inf",), self.inf, needs)
        if self.shm is not None and self.mem is not None and self.shm > self.mem:
            problems.add(("shm",), str(self.shm), f"must be <= mem ({self.mem})")
        problems.check()
        return self


class HandlerSpec(SpecModel):
    """Our extension: serve a Python handler with the bundled runtime instead of a user image: its
    file, its config, threads, server-side batching and pip requirements.

    ``path`` is relative to the directory of the API file the handler is declared in; the loader
    records that directory (see :attr:`file`).
    """

    path: NonEmptyStr
    """Part of the handler extension: the Python file defining class Handler, relative to the API file's
    directory and inside it, at most 900 KiB. Required."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Part of the handler extension: any mapping, passed to ``Handler.__init__``. Default {}."""
    threads_per_process: int = Field(1, ge=1)
    """Part of the handler extension: threads running synchronous handler methods, also the batches run at
    once. Default 1, >= 1."""
    max_batch_size: int = Field(1, ge=1)
    """Part of the handler extension: above 1, handle_post gets lists of up to this many payloads (server-side
    batching). Default 1 (off), >= 1."""
    batch_interval: float | None = Field(None, gt=0)
    """Part of the handler extension: seconds a batch waits for more payloads after its first. Default none:
    sent when a thread is free; > 0."""
    python_requirements: list[NonEmptyStr] = Field(default_factory=list)
    """Part of the handler extension: pip requirement lines installed before the handler loads, each
    non-empty. Default []."""

    # Not YAML keys: where `path` is relative to (given by the loader through the validation
    # context) and the file's text, read once when the spec is validated with that directory.
    _source_dir: Path | None = PrivateAttr(default=None)
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _read_file(self, info: ValidationInfo) -> HandlerSpec:
        source_dir = (info.context or {}).get(SOURCE_DIR_CONTEXT)
        if source_dir is not None:
            self._source_dir = Path(source_dir)
            try:
                self._source = read_confined(self.path, self._source_dir)
            except HandlerFileError as error:
                raise rule_error(self.path, str(error), "path") from None
        return self

    @property
    def file(self) -> Path:
        """The handler file: ``path`` joined to the directory of the API file it was declared in
        (absolute), or ``path`` as written (relative to the working directory) when the spec was
        validated from data without a ``base_dir``."""
        return Path(self.path) if self._source_dir is None else self._source_dir / self.path

    @property
    def file_name(self) -> str:
        """The file's name: its key in the handler ConfigMap."""
        return Path(self.path).name

    @property
    def source(self) -> str:
        """The handler file's text, read (with the same rules) from the working directory when the
        spec was validated without a source directory. Raises `SpecError` when it cannot be read."""
        if self._source is None:
            try:
                self._source = read_confined(self.path, Path.cwd())
            except HandlerFileError as error:
                from cortex_iac.errors import SpecError

                raise SpecError(f"handler.path: {self.path!r} is not allowed ({error})") from None
        return self._source


class HandlerFileError(ValueError):
    """Why a handler file cannot be used; the message is the requirement to report."""


def read_confined(path: str, base: Path, limit: int = MAX_HANDLER_BYTES) -> str:
    """The UTF-8 text of the regular file ``path`` below the directory ``base``, at most ``limit``
    bytes; raises `HandlerFileError` saying why it cannot be used otherwise.

    Confined so that a spec cannot ship any other file of the machine (``/etc/passwd``,
    ``/proc/self/environ``, a key next to the project) into a ConfigMap, a plan or a manifest:
    absolute paths, ``..`` and symbolic links leading out of ``base`` are refused, and so are
    devices, FIFOs and directories, before anything is read.
    """
    relative = "relative to the directory of the API file"
    if Path(path).is_absolute():
        raise HandlerFileError(f"must be a path {relative}, not an absolute path")
    if not _CONFIG_MAP_KEY.fullmatch(Path(path).name):
        raise HandlerFileError("the file name must be letters, digits, '-', '_' and '.' (it is a ConfigMap key)")
    root = base.resolve()
    try:
        resolved = (root / path).resolve(strict=True)
    except FileNotFoundError:
        raise HandlerFileError(f"must name an existing file {relative} ({root / path} not found)") from None
    except (OSError, RuntimeError) as error:
        raise HandlerFileError(f"must name a readable file {relative} ({error})") from None
    if not resolved.is_relative_to(root):
        raise HandlerFileError(f"must be a file inside the directory of the API file ({root})")
    try:
        info = os.stat(resolved)
        if not stat.S_ISREG(info.st_mode):
            raise HandlerFileError("must be a regular file (the Python file that defines class Handler)")
        if info.st_size > limit:
            raise HandlerFileError(f"has {info.st_size} bytes; a handler file may have at most {limit} "
                             "(it ships in a ConfigMap): keep model weights in S3 and load them in Handler.__init__")
        with open(resolved, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise HandlerFileError(f"must be a readable file ({error.strerror})") from None
    if len(data) > limit:
        raise HandlerFileError(f"has more than {limit} bytes; a handler file may have at most {limit}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HandlerFileError(f"must be UTF-8 text (byte {error.start} is not)") from None


EnvName = Annotated[
    str,
    rule(
        lambda name: _ENV_NAME.fullmatch(name) is not None and not name.startswith("CORTEX_"),
        "must be an environment variable name of letters, digits, '_', '-', '.', not starting with a "
        "digit nor with CORTEX_ (reserved)",
    ),
]
Image = Annotated[str, rule(is_image_reference, IMAGE_REQUIREMENT)]


class ContainerSpec(SpecModel):
    """One container of an API's pod: exactly one of ``image`` and ``handler`` (our extension), its
    command, environment, compute requests, probes and pre-stop hook."""

    name: Annotated[
        str,
        dns_label(63, letter_first=True),
        rule(lambda name: name not in RESERVED_CONTAINER_NAMES, "proxy and dequeuer are reserved container names"),
    ]
    """Name of the container, unique in the pod: at most 63 characters of a-z, 0-9 and '-', starting with a
    letter; not proxy or dequeuer. Required."""
    image: Image | None = None
    """Image the container runs, ``[registry/]repository[:tag][@sha256:digest]`` with the repository in
    lower case. Exactly one of image and handler."""
    handler: HandlerSpec | None = None
    """cortex_iac extension: serve a Python handler with the bundled serving runtime instead of an image.
    Exactly one of image and handler; not for TaskAPI."""
    command: list[str] | None = None
    """Entrypoint of the container, not run in a shell. Default: the image's; needed by BatchAPI and TaskAPI
    containers with an image; not with handler."""
    args: list[str] | None = None
    """Arguments to the entrypoint. Default: the image's; not with handler."""
    env: dict[EnvName, str] = Field(default_factory=dict)
    """Environment variables, name to value; names of letters, digits, _ - ., not starting with a digit nor
    with CORTEX_. Default {}."""
    compute: ComputeSpec = Field(default_factory=ComputeSpec)
    """Resource requests of the container. Every key is optional."""
    readiness_probe: ProbeSpec | None = None
    """When the container can take requests; until the probe passes, the pod gets none. Default none; TaskAPI
    takes none, exec only RealtimeAPI."""
    liveness_probe: ProbeSpec | None = None
    """Whether the container still works; it is restarted when the probe fails. Default none; its
    success_threshold must be 1."""
    pre_stop: PreStopSpec | None = None
    """Hook run before the container is stopped (RealtimeAPI and AsyncAPI; not on a RealtimeAPI's handler
    container, whose runtime drains on SIGTERM itself). Default none."""

    @model_validator(mode="after")
    def _consistent(self) -> ContainerSpec:
        problems = Problems()
        if self.image is None and self.handler is None:
            problems.add(("image",), MISSING, "a container needs exactly one of image or handler")
        elif self.image is not None and self.handler is not None:
            both = "a container needs exactly one of image or handler, and image is given"
            problems.add(("handler",), written(self.handler), both)
        elif self.handler is not None:
            runs = "not allowed with a handler (the container runs the serving runtime, python -m cortex_iac.serving)"
            for key in ("command", "args"):
                if getattr(self, key) is not None:
                    problems.add((key,), getattr(self, key), runs)
        liveness = self.liveness_probe
        if liveness is not None and liveness.success_threshold != 1:
            one = "must be 1 for a liveness probe (Kubernetes)"
            problems.add(("liveness_probe", "success_threshold"), liveness.success_threshold, one)
        problems.check()
        return self


class PodSpec(SpecModel):
    """The pod of an API: its port, concurrency and queue limits, ``request_timeout`` (our
    extension) and its containers.

    The per-kind limits (which kinds take a port, a queue length, how much concurrency) are checked
    by the API models.
    """

    port: Port = 8080
    """Port the API's container serves requests on: 1 to 65535, except 8888, 15000 and 15001 (the sidecar
    proxy's). Default 8080; not for TaskAPI."""
    max_concurrency: int = Field(1, ge=1)
    """Requests a replica handles at once. Default 1, >= 1; at most 30000 for RealtimeAPI and 100 for
    AsyncAPI; not for BatchAPI or TaskAPI."""
    max_queue_length: int = Field(100, ge=1, le=30000)
    """Requests a replica queues beyond max_concurrency; further ones get 503 at once. Default 100, 1 to
    30000; RealtimeAPI only."""
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT_SECONDS
    """cortex_iac extension: time from a request's arrival at the pod, queueing included, to a 504 answer: a
    duration, 1s to 300s. Default 60s; RealtimeAPI only."""
    containers: Annotated[list[ContainerSpec], Field(min_length=1)]
    """The containers of the pod: at least one, unique names, at most one with a handler; GPUs and Inferentia
    chips not both in one pod. Required."""

    @model_validator(mode="after")
    def _consistent(self) -> PodSpec:
        problems = Problems()
        seen: dict[str, int] = {}
        for index, container in enumerate(self.containers):
            if container.name in seen:
                unique = f"must be unique in the pod; containers[{seen[container.name]}] has it"
                problems.add(("containers", index, "name"), container.name, unique)
            seen.setdefault(container.name, index)
        handlers = [index for index, c in enumerate(self.containers) if c.handler is not None]
        for index in handlers[1:]:
            one = (f"a pod runs at most one handler container (each would listen on port {self.port}); "
                   f"containers[{handlers[0]}] has one")
            problems.add(("containers", index, "handler"), written(self.containers[index].handler), one)  # type: ignore[arg-type]
        if any(c.compute.gpu for c in self.containers):
            either = "cannot be combined with gpu in one pod: request GPUs or Inferentia chips"
            for index, container in enumerate(self.containers):
                if container.compute.inf:
                    problems.add(("containers", index, "compute", "inf"), container.compute.inf, either)
        problems.check()
        return self
