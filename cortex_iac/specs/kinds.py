"""The registry of API kinds: what this version can do with each (validate, render, deploy, serve).

Every command and the stack program asks here (:func:`unsupported`) instead of checking kinds on
its own, so a kind becomes deployable in one place. It also holds what each kind adds to every pod
(its sidecar's requests), which the node-group fit check (`cortex_iac.specs.placement`) and the
renderer share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cortex_iac.jobs.contract import WORKER_RESOURCES
from cortex_iac.specs.api import API_KINDS
from cortex_iac.specs.quantity import Quantity

Action = Literal["validate", "render", "deploy", "serve"]

_DOING = {"validate": "validated", "render": "rendered", "deploy": "deployed", "serve": "served"}


@dataclass(frozen=True)
class SidecarResources:
    """Requests (and the memory limit) of the container cortex_iac adds to each pod of a kind."""

    cpu: Quantity
    memory: Quantity
    memory_limit: Quantity

    def to_k8s(self) -> dict[str, dict[str, str]]:
        """The container's ``resources`` block."""
        return {"requests": {"cpu": str(self.cpu), "memory": str(self.memory)},
                "limits": {"memory": str(self.memory_limit)}}


# The Envoy sidecar of a RealtimeAPI pod: one worker thread proxying to one model container, small
# and steady. No CPU limit (throttling adds latency); the memory limit bounds a leak.
ENVOY_SIDECAR = SidecarResources(
    cpu=Quantity.parse("100m"), memory=Quantity.parse("64Mi"), memory_limit=Quantity.parse("256Mi")
)


# The queue worker sidecar of an AsyncAPI pod (cortex_iac/queue): Cortex's dequeuer requested 100m
# and 100Mi. The renderer raises its memory limit by the answers it may hold at once
# (render/async_api.py worker_resources).
QUEUE_WORKER_SIDECAR = SidecarResources(
    cpu=Quantity.parse("100m"), memory=Quantity.parse("128Mi"), memory_limit=Quantity.parse("256Mi")
)
# The AsyncAPI gateway container (its own pods, not a sidecar): uploads stream through in parts.
GATEWAY_RESOURCES = SidecarResources(
    cpu=Quantity.parse("100m"), memory=Quantity.parse("128Mi"), memory_limit=Quantity.parse("512Mi")
)
# The batch worker of a BatchAPI pod (cortex_iac.jobs.worker): one Python process receiving one
# batch at a time from SQS and posting it to the user's container; its resources are the contract's.
BATCH_WORKER = SidecarResources(
    cpu=Quantity.parse(WORKER_RESOURCES["requests"]["cpu"]),
    memory=Quantity.parse(WORKER_RESOURCES["requests"]["memory"]),
    memory_limit=Quantity.parse(WORKER_RESOURCES["limits"]["memory"]),
)


@dataclass(frozen=True)
class KindSupport:
    """What this version does with one API kind."""

    kind: str
    actions: frozenset[Action]
    sidecar: SidecarResources | None = None

    def can(self, action: Action) -> bool:
        return action in self.actions


_ALL: frozenset[Action] = frozenset(("validate", "render", "deploy", "serve"))

KINDS: dict[str, KindSupport] = {
    "RealtimeAPI": KindSupport("RealtimeAPI", _ALL, sidecar=ENVOY_SIDECAR),
    "AsyncAPI": KindSupport("AsyncAPI", _ALL, sidecar=QUEUE_WORKER_SIDECAR),
    "BatchAPI": KindSupport("BatchAPI", _ALL, sidecar=BATCH_WORKER),
    "TaskAPI": KindSupport("TaskAPI", _ALL),
    "TrafficSplitter": KindSupport("TrafficSplitter", frozenset({"validate", "render", "deploy"})),
}
assert tuple(KINDS) == API_KINDS


def runtime_serves_traffic(spec: Any) -> bool:
    """Whether a pod of ``spec`` has no Envoy sidecar, its serving runtime admitting requests itself:
    a RealtimeAPI whose container gives a ``handler`` (docs/design.md, "Serving runtime: where a call
    runs, and the sidecar's cost"). Image APIs keep the sidecar: their servers are not ours."""
    return spec.kind == "RealtimeAPI" and any(c.handler is not None for c in spec.pod.containers)


def sidecar_of(spec: Any) -> SidecarResources | None:
    """The sidecar's requests in a pod of ``spec``: its kind's, none where the runtime serves traffic."""
    return None if runtime_serves_traffic(spec) else KINDS[spec.kind].sidecar


def supported(action: Action) -> list[str]:
    """The kinds this version can ``action``, in Cortex's order."""
    return [kind for kind, support in KINDS.items() if support.can(action)]


def unsupported(kind: str, action: Action) -> str | None:
    """None when this version can ``action`` APIs of ``kind``; else the requirement to report."""
    if KINDS[kind].can(action):
        return None
    return (
        f"kind {kind} cannot be {_DOING[action]} by this version of cortex_iac yet; "
        f"supported: {', '.join(supported(action))}"
    )
