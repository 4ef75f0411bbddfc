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
import concurrent.futures
import functools
import gc
import importlib.metadata
import json
import os
import runpy
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple

import pulumi
import pulumi._types as pulumi_types
import pulumi.output as pulumi_output
import pulumi.runtime
import pulumi.runtime._depends_on as pulumi_depends_on
import pulumi.runtime.resource as pulumi_runtime_resource
import pulumi.runtime.resource_cycle_breaker as pulumi_cycle_breaker
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from cortex_iac.errors import CortexError, PlanError, SpecError
from cortex_iac.plan.values import SECRET, UNKNOWN

__all__ = ["SECRET", "UNKNOWN", "Program", "RecordedResource", "Recording", "load_program", "record", "run_program"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SIG_SECRET = "1b47061264138c4ac30d75fd1eb44270"
_SIG_RESOURCE = "5cf8f73096256a8f31e491e813e4eb8e"
_SIG_OUTPUT = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_SIG_ASSET = "c44067f5952c0a294b673a41bacd8c17"
_SIG_ARCHIVE = "0def7320c3a5731c473e5ecbe6d01bc7"

# The speed-ups of a recording run (see docs/design.md, "Plan speed"): the monitor's preview answer
# without the mock's round trip, the run's garbage-collection thresholds and the SDK shims.
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
        self._undecoded: list[tuple[RecordedResource, bytes]] = []

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
        wire: bytes | None = None
        if self.mocks.preview and _SPEEDUPS:
            response, wire = self._register_preview(request)
        else:
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        recorded = RecordedResource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            parent=request.parent or None,
            custom=bool(request.custom),
            provider=_urn_only(request.provider),
            inputs={} if wire is not None else _plain_struct(request.object),
            dependencies=sorted(set(request.dependencies)),
            property_dependencies={
                k: sorted(set(v.urns)) for k, v in sorted(request.propertyDependencies.items()) if v.urns
            },
            ignore_changes=list(request.ignoreChanges),
            replace_on_changes=list(request.replaceOnChanges),
            delete_before_replace=bool(request.deleteBeforeReplace),
            aliases=self._alias_urns(request),
        )
        self.recorded.append(recorded)
        if wire is not None:
            self._undecoded.append((recorded, wire))
        return response

    def decode_inputs(self) -> None:
        """Fill in the inputs of the resources recorded in their wire form (see _register_preview),
        once the run is over."""
        if not self._undecoded:
            return
        # The run's SDK objects (resources, outputs, futures, tasks) refer to each other and are
        # garbage now: free them before the inputs take their plain form.
        gc.collect()
        for recorded, wire in self._undecoded:
            recorded.inputs = _plain_struct(struct_pb2.Struct.FromString(wire))
        self._undecoded.clear()

    def _register_preview(self, request: Any) -> tuple[Any, bytes]:
        # What MockMonitor.RegisterResource answers when the mocks' new_resource echoes the inputs
        # back (preview: no id, the inputs as the outputs), without its two walks over every input:
        # deserialising the request's struct into Python values, then serialising those back into a
        # struct. The SDK reads the answer with rpc.deserialize_properties, which gives the same
        # values for the request's own struct as for that round trip (unknowns stay unknown, nulls
        # are dropped, secrets are lifted to the enclosing value either way), so hand the struct
        # back as it came. The monitor's registry (read only when a resource reference is
        # rehydrated, by a getResource invoke) gets the inputs' wire form, deserialised on demand.
        # The recording keeps the same bytes until the run ends (decode_inputs): a fraction of the
        # memory of the plain values, while the run's own state is at its largest.
        urn = self.make_urn(request.parent, request.type, request.name)
        wire = self._preview_states[urn] = request.object.SerializeToString()
        return resource_pb2.RegisterResourceResponse(urn=urn, id="", object=request.object), wire

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


# Where the recording run reaches into the Pulumi SDK's private functions, for speed only: a plan is
# the same with these or without them (tests compare the two). Each replaces a function whose result
# the recording gets the same way, or does not use:
# - pulumi.runtime.resource._get_stack_trace: for each resource the SDK captures the Python stack
#   (traceback.extract_stack, reading every frame's source line) to send the engine the resource's
#   source position. The mock monitor throws it away and plans never record it, so it returns an
#   empty trace: what it returns itself when it finds no user frame.
# - pulumi.runtime.resource_cycle_breaker._reachable: the cycle check run for every dependency a
#   resource declares (its depends_on, expanded to components' children). The SDK walks the
#   dependency graph with recursive generators, which costs the graph's depth per resource visited;
#   this walks it with a stack, visiting the same resources and giving the same answer.
# - pulumi.runtime.resource_cycle_breaker.declare_dependency (and rpc's import of it): the check
#   above asks whether the dependent is reachable from its dependency. Nothing reaches a resource
#   no dependency has yet pointed to (edges are added only here), so for those the walk is skipped:
#   the same answer without walking a dependency's whole graph (the add-ons' for every API child).
# - pulumi.runtime.rpc.contains_unknowns (and pulumi.output's wrapper of it): asked of every value
#   an Output is made from or resolves to, a dozen times per resource. The SDK's builds a closure
#   and a set per call and recurses; this answers a scalar at once and walks containers with a
#   stack: whether an Unknown is among the value and what its dicts' and lists' items hold.
# - pulumi.runtime.resource._resolve_depends_on_urns, for a depends_on that is a list of resources
#   (every API child lists the cluster's add-ons): the SDK makes an Output of each element (a
#   future, a done-callback on the loop, the outputs registry) only to read the resource back;
#   this takes the resources as they are and expands them with the SDK's own _expand_dependencies
#   (components to their children, the cycle check). Anything else in depends_on (an Output, an
#   awaitable) goes to the SDK's.
# - pulumi.runtime.resource.create_urn, for plain strings: the SDK builds a URN from Outputs (four of
#   them, each a future and loop callbacks), and for every registration computes one it uses only
#   when there is no monitor. Given strings (no Output, no resource as the parent), this gives an
#   Output of the same string: known, not secret, depending on nothing, as the SDK's is then. It is
#   resolved already, so a registration does not yield to the loop there: registrations may
#   interleave in another order than the SDK's (the recording's order; plans are sorted by URN).
# - pulumi._types.unwrap_type: asked of every input property's declared type, for every value
#   serialised, it takes the type apart with typing.get_origin/get_args each time. Its answer
#   depends on the type object alone, so this keeps each one's answer (up to 10,000 of them).
# Applied only to the SDK versions they were checked against (the pin in constraints.txt; a test fails
# when the pin moves without this list); any other version runs as is.
_SHIM_VERSIONS = ("3.272.0",)


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()


def _reachable(from_resource: pulumi.Resource, to_resource: pulumi.Resource) -> bool:
    # The SDK's _reachable: whether to_resource is among from_resource and its transitive
    # dependencies (the _direct_computed_dependencies the SDK keeps on each resource).
    seen: set[pulumi.Resource] = set()
    stack = [from_resource]
    while stack:
        resource = stack.pop()
        if resource in seen:
            continue
        if resource == to_resource:
            return True
        seen.add(resource)
        stack.extend(getattr(resource, pulumi_cycle_breaker._DEPENDENCIES_PROPERTY, ()))
    return False


_POINTED_TO = "_cortex_plan_pointed_to"  # set on a resource once a dependency points to it


def _declare_dependency(from_resource: pulumi.Resource, to_resource: pulumi.Resource) -> bool:
    # The SDK's declare_dependency: record the edge unless it closes a cycle. A cycle needs a path
    # from to_resource back to from_resource, whose last edge points to from_resource.
    if (from_resource == to_resource or getattr(from_resource, _POINTED_TO, False)) and _reachable(
        from_resource=to_resource, to_resource=from_resource
    ):
        return False
    dependencies: set[pulumi.Resource] = getattr(from_resource, pulumi_cycle_breaker._DEPENDENCIES_PROPERTY, set())
    setattr(from_resource, pulumi_cycle_breaker._DEPENDENCIES_PROPERTY, dependencies | {to_resource})
    setattr(to_resource, _POINTED_TO, True)
    return True


_UNKNOWN_TYPE = pulumi_output.Unknown


def _contains_unknowns(val: Any) -> bool:
    # The SDK's contains_unknowns (its parameter name too): whether val, or anything in its dicts'
    # values and lists' items (each container visited once), is an Unknown. Without the SDK's
    # recursion limit: a value nested too deep for it is answered instead of raising.
    if isinstance(val, _UNKNOWN_TYPE):
        return True
    if not isinstance(val, (dict, list)):
        return False
    seen = {id(val)}
    stack: list[Any] = [val]
    while stack:
        container = stack.pop()
        # A dict subclass may answer [] differently from .values(): read it as the SDK does.
        items = container if isinstance(container, list) else (
            container.values() if type(container) is dict else (container[k] for k in container)
        )
        for item in items:
            if isinstance(item, _UNKNOWN_TYPE):
                return True
            if isinstance(item, (dict, list)) and id(item) not in seen:
                seen.add(id(item))
                stack.append(item)
    return False


_SDK_RESOLVE_DEPENDS_ON_URNS = pulumi_depends_on._resolve_depends_on_urns  # what pulumi.runtime.resource imports


async def _resolve_depends_on_urns(depends_on: Any, from_resource: pulumi.Resource | None = None) -> set[str]:
    # The SDK's _resolve_depends_on_urns, as it answers a list of resources: their set, expanded.
    if not isinstance(depends_on, list) or not all(isinstance(d, pulumi.Resource) for d in depends_on):
        return await _SDK_RESOLVE_DEPENDS_ON_URNS(depends_on, from_resource)
    if not depends_on:
        return set()
    resources: set[pulumi.Resource] = set()
    for resource in depends_on:
        # Built as the SDK builds it (a copy per element, then the element added), so the set
        # iterates in the same order and the cycle check meets the resources in the same order.
        resources = resources | set()
        resources.add(resource)
    expanded = await rpc._expand_dependencies(resources, from_resource)
    return set(expanded.keys())


_SDK_CREATE_URN = pulumi_runtime_resource.create_urn


def _create_urn(
    name: Any, type_: Any, parent: Any = None, project: str | None = None, stack: str | None = None
) -> pulumi.Output[str]:
    # The SDK's create_urn, as it computes the URN of plain strings.
    if not (isinstance(name, str) and isinstance(type_, str) and (parent is None or isinstance(parent, str))
            and (project is None or isinstance(project, str)) and (stack is None or isinstance(stack, str))):
        return _SDK_CREATE_URN(name, type_, parent, project, stack)
    if parent is not None:
        prefix = parent[0 : parent.rfind("::")] + "$"
    else:
        stack = settings.get_stack() if stack is None else stack
        project = settings.get_project() if project is None else project
        prefix = "urn:pulumi:" + stack + "::" + project + "::"
    return pulumi.Output.from_input(prefix + type_ + "::" + name)


_SDK_UNWRAP_TYPE = pulumi_types.unwrap_type
_UNWRAPPED: dict[int, tuple[Any, Any]] = {}  # id of a type: the type (kept, so the id stays its) and its answer


def _unwrap_type(val: type) -> type:
    # Kept by identity, not equality: an equal type object (a ForwardRef of the same name) is still
    # answered with itself, as the SDK does.
    kept = _UNWRAPPED.get(id(val))
    if kept is not None and kept[0] is val:
        return kept[1]  # type: ignore[no-any-return]
    unwrapped = _SDK_UNWRAP_TYPE(val)
    if len(_UNWRAPPED) < 10_000:
        _UNWRAPPED[id(val)] = (val, unwrapped)
    return unwrapped


_SHIMS: tuple[tuple[Any, str, Callable[..., Any]], ...] = (
    (pulumi_runtime_resource, "_get_stack_trace", _no_stack_trace),
    (pulumi_cycle_breaker, "_reachable", _reachable),
    (pulumi_cycle_breaker, "declare_dependency", _declare_dependency),
    (rpc, "declare_dependency", _declare_dependency),
    (rpc, "contains_unknowns", _contains_unknowns),
    (pulumi_output, "contains_unknowns", _contains_unknowns),
    (pulumi_runtime_resource, "_resolve_depends_on_urns", _resolve_depends_on_urns),
    (pulumi_runtime_resource, "create_urn", _create_urn),
    (pulumi_types, "unwrap_type", _unwrap_type),
)


def _shims_apply() -> bool:
    return importlib.metadata.version("pulumi") in _SHIM_VERSIONS and all(
        callable(getattr(module, name, None)) for module, name, _ in _SHIMS
    ) and isinstance(getattr(pulumi_cycle_breaker, "_DEPENDENCIES_PROPERTY", None), str)


# Allocations between young collections while a recording runs (CPython's default is 700). The SDK
# allocates a few hundred thousand objects per thousand resources (outputs, futures, tasks) that
# live until the run ends, and with the default thresholds the collector walks all of them again
# and again (at 1,000 APIs full collections took a third of the run). The few cycles a run makes are
# collected afterwards, when the thresholds are restored.
_RUN_GC_THRESHOLD = 50_000


@contextmanager
def _fast_run(*, enabled: bool = True) -> Iterator[None]:
    """While a recording runs: fewer garbage collections, and the SDK's shims (above)."""
    if not enabled:
        yield
        return
    thresholds = gc.get_threshold()
    originals = [(module, name, getattr(module, name)) for module, name, _ in _SHIMS] if _shims_apply() else []
    gc.freeze()  # what exists before the run (the SDK, the program's modules) is never collected by it
    gc.set_threshold(_RUN_GC_THRESHOLD, thresholds[1], thresholds[2])
    if originals:
        for module, name, replacement in _SHIMS:
            setattr(module, name, replacement)
    try:
        yield
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@contextmanager
def _inline_monitor(loop: _RecordingLoop, *, enabled: bool) -> Iterator[None]:
    loop.inline = enabled
    try:
        yield
    finally:
        loop.inline = False


class _Replan(Exception):
    """A component gained a child after registrations had run: record the program again, unpumped."""


class _Pump:
    """Registers what the program declared so far, at points where that cannot change the plan.

    The SDK runs a program's code in one go and registers its resources afterwards, so every
    resource's pending registration (its coroutine, futures, tasks, outputs: most of a run's memory)
    exists at once. A preview run instead calls the program outside the event loop, and this stack
    transformation (the SDK calls it synchronously in every resource's constructor) runs the loop's
    ready work before each top-level resource, while no component is under construction: all that
    was declared before registers then and drops that state.

    What a registration reads at that moment is what it would read at the end, with one exception,
    checked here: a component's children (``depends_on`` a component means on its children, read
    when the dependent registers). If the program adds a child to a component created before a
    pump, the run is recorded again without pumping (``_Replan``). Resources declared by callbacks
    while the loop runs are not checked: they are declared during registration either way.
    """

    _MAX_ROUNDS = 100_000  # loop iterations per pump: a bound on callbacks that reschedule themselves

    def __init__(self, loop: _RecordingLoop, root: pulumi.Resource | None) -> None:
        self.loop = loop
        self.root = root
        self.generation = 0
        self.late_child: str | None = None
        self._born: weakref.WeakKeyDictionary[pulumi.Resource, int] = weakref.WeakKeyDictionary()

    def __call__(self, args: pulumi.ResourceTransformationArgs) -> None:
        if self.loop.is_running():
            return None  # declared by a callback while registrations run
        resource, parent = args.resource, args.opts.parent
        top_level = parent is None or parent is self.root
        if not top_level:
            born = self._born.get(parent)  # type: ignore[arg-type]  # not top level: a parent is set
            if born is not None and born < self.generation:
                self.late_child = f"{args.type_} {args.name!r}"
                raise _Replan(self.late_child)
        elif self._nothing_under_construction(resource):
            self._run_ready_work()
        if isinstance(resource, pulumi.ComponentResource):
            self._born[resource] = self.generation
        return None

    @staticmethod
    def _nothing_under_construction(resource: pulumi.Resource) -> bool:
        # No frame on the stack is a method of another component (its constructor may still add
        # children; a method of a finished one may declare anything). Only top-level resources ask.
        frame = sys._getframe(2)
        while frame is not None:
            code = frame.f_code
            if code.co_argcount and code.co_varnames[0] == "self":
                owner = frame.f_locals.get("self")
                if owner is not resource and isinstance(owner, pulumi.ComponentResource):
                    return False
            frame = frame.f_back  # type: ignore[assignment]  # None at the bottom of the stack
        return True

    def _run_ready_work(self) -> None:
        if self.loop.run_ready_work(self._MAX_ROUNDS):
            self.generation += 1


def _hand_over(result: Any, failure: BaseException | None) -> Any:
    # The program's result (or exception) for the SDK's run_pulumi_func, which waits for the
    # outstanding registrations and then returns or raises it, as when it called the program itself.
    if failure is not None:
        raise failure
    return result


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
    pumped = _SPEEDUPS and preview
    try:
        recording = _record_once(fn, project=project, stack=stack, config=config, preview=preview, pumped=pumped)
    except _Replan:
        recording = _record_once(fn, project=project, stack=stack, config=config, preview=preview, pumped=False)
    return recording


def _record_once(
    fn: Callable[[], Any], *, project: str, stack: str, config: dict[str, str] | None, preview: bool, pumped: bool
) -> Recording:
    loop = _usable_event_loop()
    _drop_leftovers()
    mocks = _Mocks(preview)
    monitor = _RecordingMonitor(mocks)
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config(dict(config or {}), [])
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    root = settings.get_root_resource()
    try:
        with _fast_run(enabled=_SPEEDUPS), _inline_monitor(loop, enabled=_SPEEDUPS and preview):
            if pumped:
                pump = _Pump(loop, root)
                pulumi.runtime.register_stack_transformation(pump)
                result, failure = None, None
                try:
                    result = fn()  # outside the loop, which the pump runs between top-level resources
                except BaseException as e:  # noqa: BLE001 - handed to run_pulumi_func, which re-raises it
                    failure = e
                if pump.late_child is not None:
                    raise _Replan(pump.late_child)
                _sync_await(run_pulumi_func(functools.partial(_hand_over, result, failure)))
            else:
                _sync_await(run_pulumi_func(fn))
            outputs = _sync_await(_resolve(getattr(root, "outputs", {}) or {}))
        monitor.decode_inputs()
    except _Replan:
        _drop_leftovers()
        raise
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


class _RecordingLoop(asyncio.SelectorEventLoop):
    """The event loop a recording runs on: with ``inline`` set, the SDK's calls to the monitor run
    on the loop's own thread instead of its default thread pool.

    The SDK hands every monitor call (register a resource, its outputs, an invoke) to
    ``run_in_executor(None, ...)``, because the real monitor is a gRPC server that blocks. The
    recording monitor's preview answer (``_RecordingMonitor._register_preview``) is a few
    microseconds of plain work, and the hop to a pool thread and back (a handle posted across
    threads, a self-pipe write, the interpreter lock passed back and forth) cost more than the call
    at every resource. Inline, the call's result is in the future the SDK awaits before it awaits
    it; the SDK's code around it is unchanged. Only preview runs use it: test mode's answer goes
    through Pulumi's own mock, which runs a loop of its own and so needs a thread without one.
    """

    inline = False

    def run_ready_work(self, max_rounds: int) -> bool:
        """Run the loop (not running now) until no callback is ready, at most ``max_rounds``
        iterations; whether there was any to run. Callbacks waiting on something not done yet stay."""
        ready = self._ready  # type: ignore[attr-defined]  # asyncio's queue of ready callbacks (BaseEventLoop)
        if not ready:
            return False
        for _ in range(max_rounds):
            self.call_soon(self.stop)  # one iteration: what is ready now, then stop
            self.run_forever()
            if not ready:
                break
        return True

    def run_in_executor(
        self, executor: concurrent.futures.Executor | None, func: Callable[[*_Ts], _T], *args: *_Ts
    ) -> asyncio.Future[_T]:
        if executor is not None or not self.inline:
            return super().run_in_executor(executor, func, *args)
        future: asyncio.Future[_T] = self.create_future()
        try:
            future.set_result(func(*args))
        except Exception as e:  # as the pool's worker would hand it over
            future.set_exception(e)
        return future


# The loops this module made, one per thread, kept for the life of the process: a thread's current
# loop is dropped by asyncio.run() elsewhere (a server, a test), and a loop garbage-collected unclosed
# warns (ResourceWarning) from whatever code runs at that moment.
_OWN_LOOPS: dict[int, _RecordingLoop] = {}


def _loop_for_this_thread() -> _RecordingLoop:
    """Our loop for this thread, made current. (Not the thread's current one: asking the policy
    for it makes one on the main thread, which nothing keeps or closes.)"""
    thread = threading.get_ident()
    own = _OWN_LOOPS.get(thread)
    if own is None or own.is_closed():
        own = _OWN_LOOPS[thread] = _RecordingLoop()
    asyncio.set_event_loop(own)
    return own


def _usable_event_loop() -> _RecordingLoop:
    # Pulumi's runtime drives its own loop with run_until_complete on the thread's current loop.
    # After asyncio.run() elsewhere in the process (a server, a test), the thread has none left.
    loop = _loop_for_this_thread()
    loop.set_exception_handler(_quiet_reported_errors)
    return loop


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
    here) are passed as ``$secret``. Both files are read as spec files are (size, alias and
    duplicate-key limits: ``cortex_iac.specs.loader.read_yaml``), as a pull request may bring them.
    """
    root = Path(program_dir)
    project_file = root / "Pulumi.yaml"
    if not project_file.is_file() and (root.resolve().parent / "Pulumi.yaml").is_file():
        # The program's main directory (e.g. stacks/) of a project one level up.
        root = root.resolve().parent
        project_file = root / "Pulumi.yaml"
    if not project_file.is_file():
        raise PlanError(f"{project_file}: not found (a Pulumi program directory has a Pulumi.yaml)")
    project_doc = _read_program_yaml(project_file, "a mapping with at least 'name' and 'runtime'")
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
    stack_doc = _read_program_yaml(stack_file, "a mapping, with the stack's settings under 'config'",
                                   allow_empty=True) or {}
    if not isinstance(stack_doc, dict):
        raise PlanError(f"{stack_file}: must be a mapping, with the stack's settings under 'config'")
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


def _read_program_yaml(path: Path, expected: str, *, allow_empty: bool = False) -> Any:
    from cortex_iac.specs.loader import read_yaml  # the spec layer (pydantic), only when a program is read

    try:
        return read_yaml(path, str(path), expected, allow_empty=allow_empty)
    except SpecError as e:
        raise PlanError(str(e)) from None


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
