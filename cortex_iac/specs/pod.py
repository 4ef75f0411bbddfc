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
from cortex_iac.specs.duration import duration
from cortex_iac.specs.image import IMAGE_REQUIREMENT, is_image_reference
from cortex_iac.specs.problems import MISSING, Problems, rule_error
from cortex_iac.specs.quantity import Quantity

MIN_CPU = Quantity.parse("20m")
MIN_MEM = Quantity.parse("20Mi")
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
RequestTimeout = duration(
    minimum=1,
    maximum=MAX_REQUEST_TIMEOUT_SECONDS,
    why=f"the shared load balancer and the KEDA HTTP interceptor end a request with no answer after "
    f"{MAX_REQUEST_TIMEOUT_SECONDS}s",
)

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
    """An HTTP GET handler: ``port`` (required), ``path`` (default ``/``; a leading ``/`` is added)."""

    path: HttpPath = "/"
    port: Port

    @model_validator(mode="after")
    def _leading_slash(self) -> HttpGetSpec:
        self.path = _canonical_path(self.path)
        return self


class TcpSocketSpec(SpecModel):
    """A TCP connect handler on ``port`` (required)."""

    port: Port


class ExecSpec(SpecModel):
    """A command run inside the container, not in a shell (``command``, required, non-empty)."""

    command: Annotated[list[str], Field(min_length=1)]


class ProbeSpec(SpecModel):
    """A readiness or liveness probe: exactly one of ``http_get``, ``tcp_socket``, ``exec``.

    Defaults: ``initial_delay_seconds`` 0, ``timeout_seconds`` 1, ``period_seconds`` 10,
    ``success_threshold`` 1, ``failure_threshold`` 3. Deviation: Cortex let the last four be 0, which
    Kubernetes reads as "its default"; here they are >= 1 so the value written is the value used.
    """

    http_get: HttpGetSpec | None = None
    tcp_socket: TcpSocketSpec | None = None
    exec: ExecSpec | None = None
    initial_delay_seconds: int = Field(0, ge=0)
    timeout_seconds: int = Field(1, ge=1)
    period_seconds: int = Field(10, ge=1)
    success_threshold: int = Field(1, ge=1)
    failure_threshold: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _one_handler(self) -> ProbeSpec:
        _exactly_one_handler(self, ("http_get", "tcp_socket", "exec"))
        return self


class PreStopSpec(SpecModel):
    """A pre-stop hook run before the container is stopped: exactly one of ``http_get``, ``exec``."""

    http_get: HttpGetSpec | None = None
    exec: ExecSpec | None = None

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
    """Resource requests of one container.

    ``cpu`` (default 200m, at least 20m; null means no CPU request), ``mem`` (default none, at
    least 20Mi), ``gpu`` and ``inf`` (NVIDIA GPUs / Inferentia chips, default 0, not both), ``shm``
    (size of an in-memory /dev/shm, default none, at most ``mem``).
    """

    _KEEP_NULL: ClassVar[frozenset[str]] = frozenset({"cpu"})

    cpu: Annotated[Quantity | None, rule(lambda q: q is None or q >= MIN_CPU, "must be >= 20m")] = DEFAULT_CPU
    mem: Annotated[Quantity | None, rule(lambda q: q is None or q >= MIN_MEM, "must be >= 20Mi")] = None
    gpu: int = Field(0, ge=0)
    inf: int = Field(0, ge=0)
    shm: Annotated[Quantity | None, rule(lambda q: q is None or q.value > 0, "must be > 0")] = None

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
    """Our extension: serve a Python handler with the bundled runtime instead of a user image.

    ``path`` (required) locates the handler; ``config`` (default {}) is passed to it;
    ``threads_per_process`` (default 1); server-side batching with ``max_batch_size`` (default 1 = off)
    and ``batch_interval`` (seconds to wait for a batch to fill, default none);
    ``python_requirements`` (pip requirement lines, default []).

    ``path`` is relative to the directory of the API file the handler is declared in; the loader
    records that directory (see :attr:`file`).
    """

    path: NonEmptyStr
    config: dict[str, Any] = Field(default_factory=dict)
    threads_per_process: int = Field(1, ge=1)
    max_batch_size: int = Field(1, ge=1)
    batch_interval: float | None = Field(None, gt=0)
    python_requirements: list[NonEmptyStr] = Field(default_factory=list)

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
    """One container of an API's pod.

    ``name`` (required; lowercase DNS label, unique in the pod, not ``proxy`` or ``dequeuer``),
    exactly one of ``image`` and ``handler`` (our extension), ``command`` and ``args`` (default: the
    image's; Batch and Task containers need a command), ``env`` (default {}), ``compute`` (see
    `ComputeSpec`), ``readiness_probe`` / ``liveness_probe`` / ``pre_stop`` (default none).
    """

    name: Annotated[
        str,
        dns_label(63, letter_first=True),
        rule(lambda name: name not in RESERVED_CONTAINER_NAMES, "proxy and dequeuer are reserved container names"),
    ]
    image: Image | None = None
    handler: HandlerSpec | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[EnvName, str] = Field(default_factory=dict)
    compute: ComputeSpec = Field(default_factory=ComputeSpec)
    readiness_probe: ProbeSpec | None = None
    liveness_probe: ProbeSpec | None = None
    pre_stop: PreStopSpec | None = None

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
    """The pod of an API: ``port`` (default 8080; 8888, 15000 and 15001 are reserved),
    ``max_concurrency`` (default 1), ``max_queue_length`` (default 100, at most 30000),
    ``request_timeout`` (our extension: how long a request may take from its arrival at the pod,
    queueing included, before it is answered 504; a duration, default 60s, at most 300s), and
    ``containers`` (at least one, unique names; a pod requests GPUs or Inferentia chips, not both).

    The per-kind limits (which kinds take a port, a queue length, how much concurrency) are checked
    by the API models.
    """

    port: Port = 8080
    max_concurrency: int = Field(1, ge=1)
    max_queue_length: int = Field(100, ge=1, le=30000)
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT_SECONDS
    containers: Annotated[list[ContainerSpec], Field(min_length=1)]

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
