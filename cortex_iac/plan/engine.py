"""Run Pulumi code under a recording mock engine: no Pulumi CLI, no cloud, no credentials.

Pulumi's own mock engine (``pulumi.runtime.set_mocks``) answers every resource registration; we
subclass its monitor to keep what a plan needs and the mocks do not pass on: each resource's parent,
provider, explicit and per-property dependencies, the resource options that change how an update is
carried out (``ignoreChanges``, ``replaceOnChanges``, ``deleteBeforeReplace``, and ``aliases`` as the
URNs they stand for), and its inputs exactly as the program sent them (unknowns and secrets
included).

Two modes:
- ``preview=True`` (``cortex plan``): like ``pulumi preview`` of a new stack. A resource's outputs
  that are not among its inputs are unknown, so an input computed from another resource's output
  shows as unknown instead of a made-up value. Plans are therefore deterministic.
- ``preview=False`` (tests): outputs are faked by :func:`fake_outputs` (ARNs, ids, the outputs of
  ``eks:index:Cluster``), so tests can assert on values derived from them.

Invokes (data-source calls such as ``aws.get_caller_identity``) are refused: the library's rule is
that no constructor needs cloud credentials, and a plan is the proof.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import json
import os
import runpy
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
import pulumi.runtime.resource as pulumi_runtime_resource
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from cortex_iac.errors import CortexError, PlanError
from cortex_iac.plan.values import SECRET, UNKNOWN

__all__ = ["SECRET", "UNKNOWN", "Program", "RecordedResource", "Recording", "load_program", "record", "run_program"]

_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SIG_SECRET = "1b47061264138c4ac30d75fd1eb44270"
_SIG_RESOURCE = "5cf8f73096256a8f31e491e813e4eb8e"
_SIG_OUTPUT = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_SIG_ASSET = "c44067f5952c0a294b673a41bacd8c17"
_SIG_ARCHIVE = "0def7320c3a5731c473e5ecbe6d01bc7"

# The speed-ups of a recording run (see docs/design.md, "Plan speed"): the monitor's preview answer
# without the mock's round trip, the run's garbage-collection thresholds and the stack trace shim.
# Each gives the same recording as the SDK's plain path; tests turn this off to compare the two.
_SPEEDUPS = True

FAKE_ACCOUNT = "123456789012"
FAKE_REGION = "us-east-1"


@dataclass
class RecordedResource:
    """One resource registration as the program made it.

    ``ignore_changes`` and ``replace_on_changes`` are the resource options' property paths (camelCase,
    as the SDK sends them), ``delete_before_replace`` the option of that name, ``aliases`` the URNs
    the resource had before (from its ``aliases`` option; default: none, none, false, none).
    """

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    provider: str | None
    inputs: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    aliases: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The resource as a plan file entry."""
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "custom": self.custom,
            "provider": self.provider,
            "inputs": self.inputs,
            "dependencies": self.dependencies,
            "property_dependencies": self.property_dependencies,
            "ignore_changes": self.ignore_changes,
            "replace_on_changes": self.replace_on_changes,
            "delete_before_replace": self.delete_before_replace,
            "aliases": self.aliases,
        }


@dataclass
class Recording:
    """Everything a run registered, in registration order, plus the stack outputs."""

    project: str
    stack: str
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    config: dict[str, str] = field(default_factory=dict)

    def find(self, type_: str, name: str) -> RecordedResource:
        """The one resource of this type and name; ``KeyError`` listing what exists otherwise."""
        for r in self.resources:
            if r.type == type_ and r.name == name:
                return r
        names = sorted(r.name for r in self.resources if r.type == type_)
        raise KeyError(f"no {type_} named {name!r}; resources of that type: {names}")

    def of_type(self, type_: str) -> list[RecordedResource]:
        """All resources of a type, in registration order."""
        return [r for r in self.resources if r.type == type_]

    def children(self, parent_urn: str) -> list[RecordedResource]:
        """Direct children of a resource."""
        return [r for r in self.resources if r.parent == parent_urn]


def _plain(value: Any) -> Any:
    """Turn a protobuf-JSON property value into plain JSON, marking unknowns and masking secrets."""
    if isinstance(value, str):
        return UNKNOWN if value == rpc.UNKNOWN else value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SIG_SECRET:
            return SECRET
        if sig == _SIG_RESOURCE:
            return {"$resource": value.get("urn", UNKNOWN)}
        if sig == _SIG_OUTPUT:
            if value.get("secret"):
                return SECRET
            return _plain(value["value"]) if "value" in value else UNKNOWN
        if sig in (_SIG_ASSET, _SIG_ARCHIVE):
            return {"$asset": value.get("path") or value.get("uri") or "(inline)"}
        return {k: _plain(v) for k, v in value.items()}
    return value


def _plain_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """``_plain(MessageToDict(struct))`` in one pass, without json_format's descriptor-driven walk.

    The result must stay exactly that (the plan is byte-identical to it; tests compare the two):
    anything unusual (a signature key, a number JSON has no form for) takes the two-step path.
    """
    return {key: _plain_value(value) for key, value in struct.fields.items()}


def _plain_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        text = value.string_value
        return UNKNOWN if text == rpc.UNKNOWN else text
    if kind == "struct_value":
        struct = value.struct_value
        if _SIG_KEY in struct.fields:  # secrets, resource references, assets: as _plain reads them
            return _plain(json_format.MessageToDict(struct))
        return _plain_struct(struct)
    if kind == "list_value":
        return [_plain_value(v) for v in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        if number.is_integer():
            return int(number)
        if number != number or number in (float("inf"), float("-inf")):
            return json_format.MessageToDict(value)  # raises, as MessageToDict of the whole object did
        return number
    if kind == "bool_value":
        return value.bool_value
    return None  # null_value, or no kind set


def _urn_only(provider_ref: str) -> str | None:
    # A provider reference is "<urn>::<id>"; the id is unknown in preview and says nothing useful.
    return provider_ref.rsplit("::", 1)[0] if provider_ref else None


def fake_outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Plausible outputs for a created resource in test mode (never used by ``cortex plan``)."""
    out: dict[str, Any] = {}
    if type_ == "eks:index:Cluster":
        cluster = inputs.get("name", name)
        issuer = f"oidc.eks.{FAKE_REGION}.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
        out = {
            "kubeconfig": {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": cluster}]},
            "kubeconfigJson": json.dumps({"apiVersion": "v1", "kind": "Config"}),
            "clusterSecurityGroupId": f"sg-{cluster}-cluster",
            "nodeSecurityGroupId": f"sg-{cluster}-node",
            "oidcProviderArn": f"arn:aws:iam::{FAKE_ACCOUNT}:oidc-provider/{issuer}",
            "oidcProviderUrl": f"https://{issuer}",
            "oidcIssuer": issuer,
        }
    elif type_.startswith("aws:"):
        service = type_.split(":")[1].split("/")[0]
        # "name": what auto-naming would give, minus its random suffix.
        out = {"arn": f"arn:aws:{service}:{FAKE_REGION}:{FAKE_ACCOUNT}:{name}", "id": f"{name}-id", "name": name}
        if type_ == "aws:sqs/queue:Queue":
            out["url"] = f"https://sqs.{FAKE_REGION}.amazonaws.com/{FAKE_ACCOUNT}/{name}"
        elif type_ == "aws:s3/bucket:Bucket":
            out["bucket"] = inputs.get("bucket", name)
        elif type_ == "aws:ecr/repository:Repository":
            repository = inputs.get("name", name)
            out["registryId"] = FAKE_ACCOUNT
            out["repositoryUrl"] = f"{FAKE_ACCOUNT}.dkr.ecr.{FAKE_REGION}.amazonaws.com/{repository}"
    elif type_ == "docker-build:index:Image":
        digest = "sha256:" + "ab" * 32
        out = {"digest": digest, "ref": f"{(inputs.get('tags') or [name])[0]}@{digest}"}
    return {**out, **inputs}


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, preview: bool) -> None:
        self.preview = preview

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if self.preview:
            # Inputs echo back as known outputs; everything else stays unknown, as in a real preview.
            return None, dict(args.inputs)
        return f"{args.name}-id", fake_outputs(args.typ, args.name, dict(args.inputs))

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise PlanError(
            f"the program called the data source {args.token!r}, which needs cloud credentials; "
            "pass such values in as inputs instead"
        )


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: _Mocks) -> None:
        super().__init__(mocks)
        self.mocks: _Mocks = mocks
        self.recorded: list[RecordedResource] = []
        # Preview registrations: each resource's inputs as serialised protobuf (see _register_preview).
        self._preview_states: dict[str, bytes] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # As the real engine does (Deployment.generateURN: the parent's QualifiedType, then the
        # type): a child's type is qualified by its parent's whole chain, "a$b$c", except that the
        # stack is not part of its children's. Pulumi's mocks keep only the parent's last type.
        if parent:
            qualified = parent.split("::")[2]
            if qualified != "pulumi:pulumi:Stack":
                type_ = f"{qualified}${type_}"
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_, name])

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the monitor's RPC name
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]  # pulumi's mock monitor is untyped
        if self.mocks.preview and _SPEEDUPS:
            response = self._register_preview(request)
        else:
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        self.recorded.append(
            RecordedResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                custom=bool(request.custom),
                provider=_urn_only(request.provider),
                inputs=_plain_struct(request.object),
                dependencies=sorted(set(request.dependencies)),
                property_dependencies={
                    k: sorted(set(v.urns)) for k, v in sorted(request.propertyDependencies.items()) if v.urns
                },
                ignore_changes=list(request.ignoreChanges),
                replace_on_changes=list(request.replaceOnChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
                aliases=self._alias_urns(request),
            )
        )
        return response

    def _register_preview(self, request: Any) -> Any:
        # What MockMonitor.RegisterResource answers when the mocks' new_resource echoes the inputs
        # back (preview: no id, the inputs as the outputs), without its two walks over every input:
        # deserialising the request's struct into Python values, then serialising those back into a
        # struct. The SDK reads the answer with rpc.deserialize_properties, which gives the same
        # values for the request's own struct as for that round trip (unknowns stay unknown, nulls
        # are dropped, secrets are lifted to the enclosing value either way), so hand the struct
        # back as it came. The monitor's registry (read only when a resource reference is
        # rehydrated, by a getResource invoke) gets the inputs' wire form, deserialised on demand.
        urn = self.make_urn(request.parent, request.type, request.name)
        self._preview_states[urn] = request.object.SerializeToString()
        return resource_pb2.RegisterResourceResponse(urn=urn, id="", object=request.object)

    def Invoke(self, request: Any) -> Any:  # noqa: N802 - the monitor's RPC name
        if request.tok == "pulumi:pulumi:getResource":
            urn = request.args.fields["urn"].string_value
            wire = self._preview_states.pop(urn, None)
            if wire is not None:
                _loop_for_this_thread()  # deserialising a resource reference needs a loop on this thread
                state = rpc.deserialize_properties(struct_pb2.Struct.FromString(wire))
                self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, None, state)  # type: ignore[arg-type]
        return super().Invoke(request)  # type: ignore[no-untyped-call]

    def _alias_urns(self, request: Any) -> list[str]:
        # An alias is a full URN or a spec of what differed (name, type, parent, stack, project);
        # what a spec leaves out is the resource's own.
        urns = set(request.aliasURNs)
        for alias in request.aliases:
            if alias.urn:
                urns.add(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else spec.parentUrn or request.parent
            parts = self.make_urn(parent, spec.type or request.type, spec.name or request.name).split("::")
            if spec.stack:
                parts[0] = f"urn:pulumi:{spec.stack}"
            if spec.project:
                parts[1] = spec.project
            urns.add("::".join(parts))
        return sorted(urns)


async def _resolve(value: Any) -> Any:
    """Await an exported value into plain JSON (unknowns and secrets marked)."""
    if isinstance(value, dict):
        return {str(k): await _resolve(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [await _resolve(v) for v in value]
    output = pulumi.Output.from_input(value)
    known = await output.is_known()
    if not known:
        return UNKNOWN
    if await output.is_secret():
        return SECRET
    resolved = await output.future()
    if isinstance(resolved, dict):
        return {str(k): await _resolve(v) for k, v in resolved.items()}
    if isinstance(resolved, (list, tuple)):
        return [await _resolve(v) for v in resolved]
    if isinstance(resolved, pulumi.Resource):
        return {"$resource": await _resolve(resolved.urn)}
    return resolved


# The one place the recording run reaches into the Pulumi SDK's internals, for speed only (a plan is
# the same with it or without it; tests compare the two). For each resource the SDK captures the
# Python stack (traceback.extract_stack, reading every frame's source line) to send the engine the
# resource's source position. The mock monitor throws it away and plans never record it, so while a
# recording runs, the SDK's private _get_stack_trace returns an empty trace: what it returns itself
# when it finds no user frame. Applied only to the SDK versions it was checked against (the pin in
# constraints.txt; a test fails when the pin moves without this list); any other version runs as is.
_STACK_TRACE_SHIM_VERSIONS = ("3.272.0",)


def _stack_trace_shim_applies() -> bool:
    return importlib.metadata.version("pulumi") in _STACK_TRACE_SHIM_VERSIONS and callable(
        getattr(pulumi_runtime_resource, "_get_stack_trace", None)
    )


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()


# Allocations between young collections while a recording runs (CPython's default is 700). The SDK
# allocates a few hundred thousand objects per thousand resources (outputs, futures, tasks) that
# live until the run ends, and with the default thresholds the collector walks all of them again
# and again (at 1,000 APIs full collections took a third of the run). The few cycles a run makes are
# collected afterwards, when the thresholds are restored.
_RUN_GC_THRESHOLD = 50_000


@contextmanager
def _fast_run(*, enabled: bool = True) -> Iterator[None]:
    """While a recording runs: fewer garbage collections, and no stack trace per resource."""
    if not enabled:
        yield
        return
    thresholds = gc.get_threshold()
    patched = _stack_trace_shim_applies()
    original = pulumi_runtime_resource._get_stack_trace
    gc.freeze()  # what exists before the run (the SDK, the program's modules) is never collected by it
    gc.set_threshold(_RUN_GC_THRESHOLD, thresholds[1], thresholds[2])
    if patched:
        pulumi_runtime_resource._get_stack_trace = _no_stack_trace
    try:
        yield
    finally:
        if patched:
            pulumi_runtime_resource._get_stack_trace = original
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def record(
    fn: Callable[[], Any],
    *,
    project: str = "cortex",
    stack: str = "test",
    config: dict[str, str] | None = None,
    preview: bool = False,
) -> Recording:
    """Run ``fn`` (which declares resources) under the recording engine and return what it declared.

    ``config`` maps full Pulumi config keys (``"cortex:cluster"``) to their string values, as the
    Pulumi CLI would pass them. Defaults: test mode (``preview=False``), project ``cortex``, stack
    ``test``.
    """
    _usable_event_loop()
    _drop_leftovers()
    mocks = _Mocks(preview)
    monitor = _RecordingMonitor(mocks)
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config(dict(config or {}), [])
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    root = settings.get_root_resource()
    try:
        with _fast_run(enabled=_SPEEDUPS):
            _sync_await(run_pulumi_func(fn))
            outputs = _sync_await(_resolve(getattr(root, "outputs", {}) or {}))
    except PlanError:
        _drop_leftovers()
        raise
    except Exception as e:
        _drop_leftovers()
        # Errors from inside Pulumi's machinery come wrapped; surface the library's own error.
        cause = _find_cortex_error(e)
        if cause is not None:
            raise cause from e
        raise
    finally:
        settings.ROOT.set(None)
    return Recording(
        project=project, stack=stack, resources=monitor.recorded, outputs=outputs, config=dict(config or {})
    )


def _drop_leftovers() -> None:
    # A run that failed (e.g. on a refused invoke) leaves tasks in Pulumi's process-wide settings that
    # wait on it; the next run would await them and fail with the old error. Pulumi's own
    # @pulumi.runtime.test clears the same state before each test.
    leftovers = [task for task in settings.SETTINGS.outputs if not task.done()]
    settings.SETTINGS.outputs.clear()
    settings.SETTINGS.rpc_manager.clear()
    for task in leftovers:
        task.cancel()
    if leftovers:
        asyncio.get_event_loop().run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
    # The failed run's futures hold the error the caller already got; collect them now, while the
    # loop's handler below keeps their "exception was never retrieved" quiet, rather than at some
    # later garbage collection (which could run inside an unrelated import and log there).
    gc.collect()


def _quiet_reported_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if isinstance(context.get("exception"), CortexError):
        return  # raised to the caller of record() already
    loop.default_exception_handler(context)


# The loops this module made, one per thread, kept for the life of the process: a thread's current
# loop is dropped by asyncio.run() elsewhere (a server, a test), and a loop garbage-collected unclosed
# warns (ResourceWarning) from whatever code runs at that moment.
_OWN_LOOPS: dict[int, asyncio.AbstractEventLoop] = {}


def _loop_for_this_thread() -> asyncio.AbstractEventLoop:
    """Our loop for this thread, made current. (Not the thread's current one: asking the policy
    for it makes one on the main thread, which nothing keeps or closes.)"""
    thread = threading.get_ident()
    own = _OWN_LOOPS.get(thread)
    if own is None or own.is_closed():
        own = _OWN_LOOPS[thread] = asyncio.new_event_loop()
    asyncio.set_event_loop(own)
    return own


def _usable_event_loop() -> None:
    # Pulumi's runtime drives its own loop with run_until_complete on the thread's current loop.
    # After asyncio.run() elsewhere in the process (a server, a test), the thread has none left.
    _loop_for_this_thread().set_exception_handler(_quiet_reported_errors)


def _find_cortex_error(e: BaseException) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen:
        if isinstance(current, CortexError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@dataclass
class Program:
    """A Pulumi program on disk: its project file, main directory and one stack's config."""

    project: str
    main: Path
    stack: str
    config: dict[str, str]
    secret_keys: list[str]


def load_program(program_dir: str | Path, stack: str) -> Program:
    """Read ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` the way the Pulumi CLI does.

    Config values that are not strings are passed as JSON, like the CLI does for structured config;
    keys without a namespace get the project's name; ``secure:`` values (encrypted, so unreadable
    here) are passed as ``$secret``.
    """
    import yaml

    root = Path(program_dir)
    project_file = root / "Pulumi.yaml"
    if not project_file.is_file() and (root.resolve().parent / "Pulumi.yaml").is_file():
        # The program's main directory (e.g. stacks/) of a project one level up.
        root = root.resolve().parent
        project_file = root / "Pulumi.yaml"
    if not project_file.is_file():
        raise PlanError(f"{project_file}: not found (a Pulumi program directory has a Pulumi.yaml)")
    try:
        project_doc = yaml.safe_load(project_file.read_text()) or {}
    except yaml.YAMLError as e:
        raise PlanError(f"{project_file}: not valid YAML: {e}") from None
    if not isinstance(project_doc, dict) or "name" not in project_doc:
        raise PlanError(f"{project_file}: must be a mapping with at least 'name' and 'runtime'")
    runtime = project_doc.get("runtime")
    runtime_name = runtime.get("name") if isinstance(runtime, dict) else runtime
    if runtime_name != "python":
        raise PlanError(f"{project_file}: runtime is {runtime_name!r}; cortex plan runs only 'python' programs")
    project = str(project_doc["name"])
    main = (root / str(project_doc.get("main", "."))).resolve()
    config_dir = root / str(project_doc.get("stackConfigDir", "."))
    stack_file = config_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        have = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in config_dir.glob("Pulumi.*.yaml"))
        raise PlanError(f"{stack_file}: no such stack config; stacks here: {', '.join(have) or 'none'}")
    try:
        stack_doc = yaml.safe_load(stack_file.read_text()) or {}
    except yaml.YAMLError as e:
        raise PlanError(f"{stack_file}: not valid YAML: {e}") from None
    raw_config = stack_doc.get("config") or {}
    if not isinstance(raw_config, dict):
        raise PlanError(f"{stack_file}: 'config' must be a mapping of keys to values")
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw_config.items():
        full_key = key if ":" in str(key) else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[full_key] = SECRET
            secret_keys.append(full_key)
        elif isinstance(value, str):
            config[full_key] = value
        else:
            config[full_key] = json.dumps(value)
    return Program(project=project, main=main, stack=stack, config=config, secret_keys=secret_keys)


@contextmanager
def _program_context(main: Path) -> Iterator[None]:
    # The Pulumi language host runs the program with its main directory as working directory and
    # first on sys.path; do the same, and undo it afterwards.
    old_cwd, old_path = os.getcwd(), list(sys.path)
    os.chdir(main)
    sys.path.insert(0, str(main))
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path


def run_program(program_dir: str | Path, stack: str, *, preview: bool = True) -> Recording:
    """Run a Pulumi Python program directory for ``stack`` under the recording engine."""
    program = load_program(program_dir, stack)
    entry = program.main / "__main__.py"
    if not entry.is_file():
        raise PlanError(f"{entry}: not found (the program's main directory needs a __main__.py)")
    with _program_context(program.main):
        return record(
            lambda: runpy.run_path(str(entry), run_name="__main__"),
            project=program.project,
            stack=stack,
            config=program.config,
            preview=preview,
        )
