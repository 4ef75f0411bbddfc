from __future__ import annotations

import pytest

from cortex_iac.instance_types import INSTANCE_TYPES, InstanceType, get_instance_type

FACTS = [
    # name, vCPUs, GiB, GPUs, GPU model, Inferentia chips, arch
    ("t3.nano", 2, 0.5, 0, None, 0, "amd64"),
    ("t3.medium", 2, 4, 0, None, 0, "amd64"),
    ("t4g.2xlarge", 8, 32, 0, None, 0, "arm64"),
    ("m5.large", 2, 8, 0, None, 0, "amd64"),
    ("m5.metal", 96, 384, 0, None, 0, "amd64"),
    ("m7i.metal-48xl", 192, 768, 0, None, 0, "amd64"),
    ("m6g.medium", 1, 4, 0, None, 0, "arm64"),
    ("c5.9xlarge", 36, 72, 0, None, 0, "amd64"),
    ("c5.18xlarge", 72, 144, 0, None, 0, "amd64"),
    ("c7g.16xlarge", 64, 128, 0, None, 0, "arm64"),
    ("r6i.32xlarge", 128, 1024, 0, None, 0, "amd64"),
    ("r6g.medium", 1, 8, 0, None, 0, "arm64"),
    ("g4dn.xlarge", 4, 16, 1, "T4", 0, "amd64"),
    ("g4dn.12xlarge", 48, 192, 4, "T4", 0, "amd64"),
    ("g5.12xlarge", 48, 192, 4, "A10G", 0, "amd64"),
    ("g5.48xlarge", 192, 768, 8, "A10G", 0, "amd64"),
    ("g6.xlarge", 4, 16, 1, "L4", 0, "amd64"),
    ("g6e.xlarge", 4, 32, 1, "L40S", 0, "amd64"),
    ("p3.2xlarge", 8, 61, 1, "V100", 0, "amd64"),
    ("p4d.24xlarge", 96, 1152, 8, "A100", 0, "amd64"),
    ("p5.48xlarge", 192, 2048, 8, "H100", 0, "amd64"),
    ("inf1.6xlarge", 24, 48, 0, None, 4, "amd64"),
    ("inf2.xlarge", 4, 16, 0, None, 1, "amd64"),
    ("inf2.48xlarge", 192, 768, 0, None, 12, "amd64"),
]


@pytest.mark.parametrize(("name", "vcpus", "gib", "gpus", "model", "chips", "arch"), FACTS)
def test_known_facts(name: str, vcpus: int, gib: float, gpus: int, model: str | None, chips: int, arch: str) -> None:
    assert get_instance_type(name) == InstanceType(name, vcpus, int(gib * 1024), gpus, model, chips, arch)  # type: ignore[arg-type]


def test_covers_every_requested_family_in_all_usual_sizes() -> None:
    families = {name.split(".")[0] for name in INSTANCE_TYPES}
    assert families >= set(
        "t3 t3a t4g m5 m5a m6i m6a m7i m6g m7g c5 c6i c7i c6g c7g r5 r6i r7i r6g g4dn g5 g6 g6e p3 p4d p5 inf1 inf2".split()
    )
    for family in ("m5", "m6i", "c6i", "r5", "r7i"):
        for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"):
            assert f"{family}.{size}" in INSTANCE_TYPES
    assert "m5a.metal" not in INSTANCE_TYPES  # m5a has no bare-metal size
    assert len(INSTANCE_TYPES) == 221


def test_table_is_consistent() -> None:
    for name, instance in INSTANCE_TYPES.items():
        assert instance.name == name
        assert instance.vcpus > 0 and instance.memory_mib >= 512
        assert (instance.gpus > 0) == (instance.gpu_model is not None)
        assert not (instance.gpus and instance.neuron_devices)
        assert instance.arch == ("arm64" if name.split(".")[0][-1] == "g" and name[0] in "mcrt" else "amd64")


def test_unknown_type_raises_key_error() -> None:
    with pytest.raises(KeyError, match="unknown EC2 instance type 'm5.huge'"):
        get_instance_type("m5.huge")
