"""A bundled table of common EC2 instance types: vCPUs, memory, accelerators, CPU architecture.

Used to validate node groups and to size pods without AWS credentials. Facts as published by AWS
(EC2 instance-type pages) and as listed in Karpenter's generated instance-type reference
(aws/karpenter-provider-aws, `website/content/en/preview/reference/instance-types.md`, snapshot of
2026-08-21; every entry here matched it exactly), p3 from the same project's v1.0 reference, since the
preview one no longer lists it. Regular families are generated
from two facts, the vCPUs of each size and the GiB of memory per vCPU; burstable and accelerated
types are listed one by one. A type missing here can be added in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Arch = Literal["amd64", "arm64"]


@dataclass(frozen=True)
class InstanceType:
    """One EC2 instance type.

    ``gpus`` counts NVIDIA GPUs (model in ``gpu_model``, else None); ``neuron_devices`` counts AWS
    Inferentia chips (the `aws.amazon.com/neuron` resource); ``arch`` is the Kubernetes
    architecture label.
    """

    name: str
    vcpus: int
    memory_mib: int
    gpus: int = 0
    gpu_model: str | None = None
    neuron_devices: int = 0
    arch: Arch = "amd64"


_SIZE_VCPUS = {
    "medium": 1,
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "9xlarge": 36,
    "12xlarge": 48,
    "16xlarge": 64,
    "18xlarge": 72,
    "24xlarge": 96,
    "32xlarge": 128,
    "48xlarge": 192,
}

_INTEL_7 = "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge"
_GRAVITON = "medium large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge"
_GEN_6 = "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge"
_GEN_5 = "large xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge"

# family: (GiB per vCPU, arch, sizes, bare-metal sizes -> the size they equal)
_REGULAR: dict[str, tuple[int, Arch, str, dict[str, str]]] = {
    "m5": (4, "amd64", _GEN_5, {"metal": "24xlarge"}),
    "m5a": (4, "amd64", _GEN_5, {}),
    "m6i": (4, "amd64", _GEN_6, {"metal": "32xlarge"}),
    "m6a": (4, "amd64", _GEN_6 + " 48xlarge", {"metal": "48xlarge"}),
    "m7i": (4, "amd64", _INTEL_7, {"metal-24xl": "24xlarge", "metal-48xl": "48xlarge"}),
    "m6g": (4, "arm64", _GRAVITON, {"metal": "16xlarge"}),
    "m7g": (4, "arm64", _GRAVITON, {"metal": "16xlarge"}),
    "c5": (2, "amd64", "large xlarge 2xlarge 4xlarge 9xlarge 12xlarge 18xlarge 24xlarge", {"metal": "24xlarge"}),
    "c6i": (2, "amd64", _GEN_6, {"metal": "32xlarge"}),
    "c7i": (2, "amd64", _INTEL_7, {"metal-24xl": "24xlarge", "metal-48xl": "48xlarge"}),
    "c6g": (2, "arm64", _GRAVITON, {"metal": "16xlarge"}),
    "c7g": (2, "arm64", _GRAVITON, {"metal": "16xlarge"}),
    "r5": (8, "amd64", _GEN_5, {"metal": "24xlarge"}),
    "r6i": (8, "amd64", _GEN_6, {"metal": "32xlarge"}),
    "r7i": (8, "amd64", _INTEL_7, {"metal-24xl": "24xlarge", "metal-48xl": "48xlarge"}),
    "r6g": (8, "arm64", _GRAVITON, {"metal": "16xlarge"}),
}

# Burstable sizes: (vCPUs, MiB); the same for t3, t3a and t4g.
_BURSTABLE = {
    "nano": (2, 512),
    "micro": (2, 1024),
    "small": (2, 2048),
    "medium": (2, 4096),
    "large": (2, 8192),
    "xlarge": (4, 16384),
    "2xlarge": (8, 32768),
}
_BURSTABLE_ARCH: dict[str, Arch] = {"t3": "amd64", "t3a": "amd64", "t4g": "arm64"}

_GIB = 1024

# name: (vCPUs, GiB, GPUs, GPU model)
_GPU: dict[str, tuple[int, int, int, str]] = {
    "g4dn.xlarge": (4, 16, 1, "T4"),
    "g4dn.2xlarge": (8, 32, 1, "T4"),
    "g4dn.4xlarge": (16, 64, 1, "T4"),
    "g4dn.8xlarge": (32, 128, 1, "T4"),
    "g4dn.12xlarge": (48, 192, 4, "T4"),
    "g4dn.16xlarge": (64, 256, 1, "T4"),
    "g4dn.metal": (96, 384, 8, "T4"),
    "g5.xlarge": (4, 16, 1, "A10G"),
    "g5.2xlarge": (8, 32, 1, "A10G"),
    "g5.4xlarge": (16, 64, 1, "A10G"),
    "g5.8xlarge": (32, 128, 1, "A10G"),
    "g5.12xlarge": (48, 192, 4, "A10G"),
    "g5.16xlarge": (64, 256, 1, "A10G"),
    "g5.24xlarge": (96, 384, 4, "A10G"),
    "g5.48xlarge": (192, 768, 8, "A10G"),
    "g6.xlarge": (4, 16, 1, "L4"),
    "g6.2xlarge": (8, 32, 1, "L4"),
    "g6.4xlarge": (16, 64, 1, "L4"),
    "g6.8xlarge": (32, 128, 1, "L4"),
    "g6.12xlarge": (48, 192, 4, "L4"),
    "g6.16xlarge": (64, 256, 1, "L4"),
    "g6.24xlarge": (96, 384, 4, "L4"),
    "g6.48xlarge": (192, 768, 8, "L4"),
    "g6e.xlarge": (4, 32, 1, "L40S"),
    "g6e.2xlarge": (8, 64, 1, "L40S"),
    "g6e.4xlarge": (16, 128, 1, "L40S"),
    "g6e.8xlarge": (32, 256, 1, "L40S"),
    "g6e.12xlarge": (48, 384, 4, "L40S"),
    "g6e.16xlarge": (64, 512, 1, "L40S"),
    "g6e.24xlarge": (96, 768, 4, "L40S"),
    "g6e.48xlarge": (192, 1536, 8, "L40S"),
    "p3.2xlarge": (8, 61, 1, "V100"),
    "p3.8xlarge": (32, 244, 4, "V100"),
    "p3.16xlarge": (64, 488, 8, "V100"),
    "p3dn.24xlarge": (96, 768, 8, "V100"),
    "p4d.24xlarge": (96, 1152, 8, "A100"),
    "p5.4xlarge": (16, 256, 1, "H100"),
    "p5.48xlarge": (192, 2048, 8, "H100"),
}

# name: (vCPUs, GiB, Inferentia chips)
_INFERENTIA: dict[str, tuple[int, int, int]] = {
    "inf1.xlarge": (4, 8, 1),
    "inf1.2xlarge": (8, 16, 1),
    "inf1.6xlarge": (24, 48, 4),
    "inf1.24xlarge": (96, 192, 16),
    "inf2.xlarge": (4, 16, 1),
    "inf2.8xlarge": (32, 128, 1),
    "inf2.24xlarge": (96, 384, 6),
    "inf2.48xlarge": (192, 768, 12),
}


def _build() -> dict[str, InstanceType]:
    table: list[InstanceType] = []
    for family, arch in _BURSTABLE_ARCH.items():
        for size, (vcpus, mib) in _BURSTABLE.items():
            table.append(InstanceType(f"{family}.{size}", vcpus, mib, arch=arch))
    for family, (gib_per_vcpu, arch, sizes, metal) in _REGULAR.items():
        named = {size: size for size in sizes.split()} | metal
        for size, equal_to in named.items():
            vcpus = _SIZE_VCPUS[equal_to]
            table.append(InstanceType(f"{family}.{size}", vcpus, vcpus * gib_per_vcpu * _GIB, arch=arch))
    for name, (vcpus, gib, gpus, model) in _GPU.items():
        table.append(InstanceType(name, vcpus, gib * _GIB, gpus=gpus, gpu_model=model))
    for name, (vcpus, gib, chips) in _INFERENTIA.items():
        table.append(InstanceType(name, vcpus, gib * _GIB, neuron_devices=chips))
    return {instance.name: instance for instance in table}


INSTANCE_TYPES: dict[str, InstanceType] = _build()
"""Every bundled instance type by name, e.g. ``INSTANCE_TYPES["g4dn.xlarge"]``."""


def get_instance_type(name: str) -> InstanceType:
    """The bundled facts of instance type ``name``; raises `KeyError` when it is not in the table."""
    try:
        return INSTANCE_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown EC2 instance type {name!r}") from None
