"""Where an API's pods may run: the node groups it may use and whether its pod fits them.

One function decides it (:func:`placement`), so `cortex validate` refuses exactly the APIs the
renderer could not place, and the renderer places pods on exactly the groups found here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from cortex_iac.instance_types import InstanceType, get_instance_type
from cortex_iac.specs.kinds import sidecar_of
from cortex_iac.specs.pod import DEFAULT_MEM_REQUEST
from cortex_iac.specs.problems import Path, Phrase
from cortex_iac.specs.quantity import Quantity

if TYPE_CHECKING:
    from cortex_iac.specs.api import WorkloadSpec
    from cortex_iac.specs.cluster import NodeGroupSpec

# Cortex's 128 huge pages of 2 MiB per Inferentia chip, which every pod asking for chips requests.
HUGEPAGE_BYTES = 2 * 1024 * 1024
HUGEPAGES_PER_INF = Quantity(128 * HUGEPAGE_BYTES, "BinarySI")

Accelerator = Literal["gpu", "inf"]


def accelerator_of(instance_type: InstanceType) -> Accelerator | None:
    """The accelerator a node of this type offers (NVIDIA GPUs or Inferentia chips), or None."""
    if instance_type.gpus:
        return "gpu"
    if instance_type.neuron_devices:
        return "inf"
    return None


@dataclass(frozen=True)
class PodRequests:
    """What one pod of an API requests in all: its containers, the kind's sidecar and huge pages."""

    cpu: Decimal
    memory: Decimal
    gpu: int
    inf: int

    def fits(self, t: InstanceType) -> bool:
        return (self.cpu <= t.vcpus and self.memory <= Decimal(t.memory_mib) * 2**20
                and self.gpu <= t.gpus and self.inf <= t.neuron_devices)

    def __str__(self) -> str:
        return (f"cpu {Quantity(self.cpu)}, memory {Quantity(self.memory, 'BinarySI')}, gpu {self.gpu}, "
                f"inf {self.inf} (sidecar included)")


def pod_requests(spec: WorkloadSpec) -> PodRequests:
    """The requests of one pod of ``spec``."""
    sidecar = sidecar_of(spec)
    cpu = sidecar.cpu.value if sidecar else Decimal(0)
    memory = sidecar.memory.value if sidecar else Decimal(0)
    gpu = inf = 0
    for c in spec.pod.containers:
        if c.compute.cpu is not None:
            cpu += c.compute.cpu.value
        memory += (DEFAULT_MEM_REQUEST if c.compute.mem is None else c.compute.mem).value
        memory += HUGEPAGES_PER_INF.value * c.compute.inf
        gpu += c.compute.gpu
        inf += c.compute.inf
    return PodRequests(cpu=cpu, memory=memory, gpu=gpu, inf=inf)


def accelerators(spec: WorkloadSpec) -> list[Accelerator]:
    """The accelerators the pods of ``spec`` request."""
    found: list[Accelerator] = []
    if any(c.compute.gpu for c in spec.pod.containers):
        found.append("gpu")
    if any(c.compute.inf for c in spec.pod.containers):
        found.append("inf")
    return found


@dataclass(frozen=True)
class Placement:
    """The outcome for one API: ``groups`` it may run on (None: the cluster's groups are unknown),
    or the ``problems`` that keep it from running anywhere (``(path, value, requirement)``)."""

    groups: tuple[NodeGroupSpec, ...] | None
    problems: tuple[tuple[Path, object, str], ...] = ()


def placement(spec: WorkloadSpec, node_groups: Sequence[NodeGroupSpec] | None) -> Placement:
    """The node groups the pods of ``spec`` may run on, given the cluster's ``node_groups``.

    Those the API names in ``node_groups`` (each must exist, and the pod must fit at least one of
    them), or else every group the pod fits on whose accelerator (if any) it requests: an
    unpinned CPU API keeps off GPU and Inferentia nodes. A pod that fits no allowed instance type
    would stay Pending for ever, so that is a problem here. (Necessary, not sufficient: the
    kubelet and daemon sets reserve part of every node.)
    """
    if node_groups is None:
        return Placement(groups=None)
    by_name = {g.name: g for g in node_groups}
    problems: list[tuple[Path, object, str]] = []
    for index, name in enumerate(spec.node_groups or ()):
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            problems.append((("node_groups", index), name, f"must be a node group of the cluster ({known})"))
    if problems:
        return Placement(groups=(), problems=tuple(problems))
    named = list(node_groups) if spec.node_groups is None else [by_name[n] for n in spec.node_groups]
    need = pod_requests(spec)
    fitting = [g for g in named if need.fits(get_instance_type(g.instance_type))]
    if spec.node_groups is None:
        wanted = (None, *accelerators(spec))
        fitting = [g for g in fitting if accelerator_of(get_instance_type(g.instance_type)) in wanted]
    if not fitting:
        offered = "; ".join(
            f"{g.name}: {t.name} (cpu {t.vcpus}, memory {t.memory_mib}Mi, gpu {t.gpus}, inf {t.neuron_devices})"
            for g, t in ((g, get_instance_type(g.instance_type)) for g in named)
        ) or "none"
        where = "node groups it names" if spec.node_groups is not None else "node groups it may use"
        problems.append((("pod",), Phrase(f"needs {need}"), f"must fit an instance type of the {where} ({offered})"))
        return Placement(groups=(), problems=tuple(problems))
    return Placement(groups=tuple(named if spec.node_groups is not None else fitting))

