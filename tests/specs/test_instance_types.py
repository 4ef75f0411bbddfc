"""The bundled instance-type table (cortex_iac/data/instance_types.json) and its generator
(scripts/gen_instance_types.py)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cortex_iac.instance_types import (
    INSTANCE_TYPES,
    MISSING_TYPE_HINT,
    SOURCE,
    InstanceType,
    get_instance_type,
)

REPO = Path(__file__).resolve().parents[2]

FACTS = [
    # name, vCPUs, GiB, NVIDIA GPUs, GPU model, Neuron devices, arch
    ("t3.nano", 2, 0.5, 0, None, 0, "amd64"),
    ("t3.medium", 2, 4, 0, None, 0, "amd64"),
    ("t4g.2xlarge", 8, 32, 0, None, 0, "arm64"),
    ("m5.large", 2, 8, 0, None, 0, "amd64"),
    ("m5.metal", 96, 384, 0, None, 0, "amd64"),
    ("m7i.metal-48xl", 192, 768, 0, None, 0, "amd64"),
    ("m6g.medium", 1, 4, 0, None, 0, "arm64"),
    ("m6g.large", 2, 8, 0, None, 0, "arm64"),
    ("c5.9xlarge", 36, 72, 0, None, 0, "amd64"),
    ("c5.18xlarge", 72, 144, 0, None, 0, "amd64"),
    ("c7g.16xlarge", 64, 128, 0, None, 0, "arm64"),
    ("r6i.32xlarge", 128, 1024, 0, None, 0, "amd64"),
    ("r6g.medium", 1, 8, 0, None, 0, "arm64"),
    ("g4dn.xlarge", 4, 16, 1, "T4", 0, "amd64"),
    ("g4dn.12xlarge", 48, 192, 4, "T4", 0, "amd64"),
    ("g4ad.xlarge", 4, 16, 0, None, 0, "amd64"),  # an AMD GPU: not an NVIDIA one
    ("g5.12xlarge", 48, 192, 4, "A10G", 0, "amd64"),
    ("g5.48xlarge", 192, 768, 8, "A10G", 0, "amd64"),
    ("g5g.xlarge", 4, 8, 1, "T4G", 0, "arm64"),
    ("g6.xlarge", 4, 16, 1, "L4", 0, "amd64"),
    ("g6e.xlarge", 4, 32, 1, "L40S", 0, "amd64"),
    ("g6f.large", 2, 8, 0, None, 0, "amd64"),  # a fraction of an L4: no nvidia.com/gpu
    ("p4d.24xlarge", 96, 1152, 8, "A100", 0, "amd64"),
    ("p5.48xlarge", 192, 2048, 8, "H100", 0, "amd64"),
    ("inf1.xlarge", 4, 8, 0, None, 1, "amd64"),
    ("inf1.6xlarge", 24, 48, 0, None, 4, "amd64"),
    ("inf2.xlarge", 4, 16, 0, None, 1, "amd64"),
    ("inf2.48xlarge", 192, 768, 0, None, 12, "amd64"),
    ("trn1.32xlarge", 128, 512, 0, None, 16, "amd64"),
    # Cortex v0.42 types Karpenter v1.14 no longer lists:
    ("p3.2xlarge", 8, 61, 1, "V100", 0, "amd64"),  # from Karpenter's v1.0 reference
    ("p2.xlarge", 4, 61, 1, "K80", 0, "amd64"),  # from Karpenter's v1.0 reference
    ("g2.8xlarge", 32, 60, 4, "K520", 0, "amd64"),  # from Karpenter's v0.26 reference
    ("c6gn.metal", 64, 128, 0, None, 0, "arm64"),  # from Cortex's own table
    ("cr1.8xlarge", 32, 244, 0, None, 0, "amd64"),  # from Cortex's own table
]

# Every instance type Cortex v0.42 accepted: the keys of InstanceMetadatas (all regions) in
# cortexlabs/cortex pkg/lib/aws/resource_metadata.go at tag v0.42.1 (= branch 0.42),
# commit 89be9ca198c0b78090e962830840644a0c72cb86 (git blob b7ca6e10161436b64c974dc8f5617b697e99d074).
CORTEX_V0_42_TYPES = """
    a1.medium a1.large a1.xlarge a1.2xlarge a1.4xlarge a1.metal
    c1.medium c1.xlarge
    c3.large c3.xlarge c3.2xlarge c3.4xlarge c3.8xlarge
    c4.large c4.xlarge c4.2xlarge c4.4xlarge c4.8xlarge
    c5.large c5.xlarge c5.2xlarge c5.4xlarge c5.9xlarge c5.12xlarge c5.18xlarge c5.24xlarge c5.metal
    c5a.large c5a.xlarge c5a.2xlarge c5a.4xlarge c5a.8xlarge c5a.12xlarge c5a.16xlarge c5a.24xlarge
    c5ad.large c5ad.xlarge c5ad.2xlarge c5ad.4xlarge c5ad.8xlarge c5ad.12xlarge c5ad.16xlarge c5ad.24xlarge
    c5d.large c5d.xlarge c5d.2xlarge c5d.4xlarge c5d.9xlarge c5d.12xlarge c5d.18xlarge c5d.24xlarge c5d.metal
    c5n.large c5n.xlarge c5n.2xlarge c5n.4xlarge c5n.9xlarge c5n.18xlarge c5n.metal
    c6a.large c6a.xlarge c6a.2xlarge c6a.4xlarge c6a.8xlarge c6a.12xlarge c6a.16xlarge c6a.24xlarge
    c6a.32xlarge c6a.48xlarge c6a.metal
    c6g.medium c6g.large c6g.xlarge c6g.2xlarge c6g.4xlarge c6g.8xlarge c6g.12xlarge c6g.16xlarge c6g.metal
    c6gd.medium c6gd.large c6gd.xlarge c6gd.2xlarge c6gd.4xlarge c6gd.8xlarge c6gd.12xlarge c6gd.16xlarge
    c6gd.metal
    c6gn.medium c6gn.large c6gn.xlarge c6gn.2xlarge c6gn.4xlarge c6gn.8xlarge c6gn.12xlarge c6gn.16xlarge
    c6gn.metal
    c6i.large c6i.xlarge c6i.2xlarge c6i.4xlarge c6i.8xlarge c6i.12xlarge c6i.16xlarge c6i.24xlarge
    c6i.32xlarge c6i.metal
    cc2.8xlarge
    cr1.8xlarge
    d2.xlarge d2.2xlarge d2.4xlarge d2.8xlarge
    d3.xlarge d3.2xlarge d3.4xlarge d3.8xlarge
    d3en.xlarge d3en.2xlarge d3en.4xlarge d3en.6xlarge d3en.8xlarge d3en.12xlarge
    dl1.24xlarge
    f1.2xlarge f1.4xlarge f1.16xlarge
    g2.2xlarge g2.8xlarge
    g3.4xlarge g3.8xlarge g3.16xlarge
    g3s.xlarge
    g4ad.xlarge g4ad.2xlarge g4ad.4xlarge g4ad.8xlarge g4ad.16xlarge
    g4dn.xlarge g4dn.2xlarge g4dn.4xlarge g4dn.8xlarge g4dn.12xlarge g4dn.16xlarge g4dn.metal
    g5.xlarge g5.2xlarge g5.4xlarge g5.8xlarge g5.12xlarge g5.16xlarge g5.24xlarge g5.48xlarge
    g5g.xlarge g5g.2xlarge g5g.4xlarge g5g.8xlarge g5g.16xlarge g5g.metal
    h1.2xlarge h1.4xlarge h1.8xlarge h1.16xlarge
    hpc6a.48xlarge
    hs1.8xlarge
    i2.xlarge i2.2xlarge i2.4xlarge i2.8xlarge
    i3.large i3.xlarge i3.2xlarge i3.4xlarge i3.8xlarge i3.16xlarge i3.metal
    i3en.large i3en.xlarge i3en.2xlarge i3en.3xlarge i3en.6xlarge i3en.12xlarge i3en.24xlarge i3en.metal
    i3p.16xlarge
    im4gn.large im4gn.xlarge im4gn.2xlarge im4gn.4xlarge im4gn.8xlarge im4gn.16xlarge
    inf1.24xlarge inf1.xlarge inf1.2xlarge inf1.6xlarge
    is4gen.medium is4gen.large is4gen.xlarge is4gen.2xlarge is4gen.4xlarge is4gen.8xlarge
    m1.small m1.medium m1.large m1.xlarge
    m2.xlarge m2.2xlarge m2.4xlarge
    m3.medium m3.large m3.xlarge m3.2xlarge
    m4.large m4.xlarge m4.2xlarge m4.4xlarge m4.10xlarge m4.16xlarge
    m5.large m5.xlarge m5.2xlarge m5.4xlarge m5.8xlarge m5.12xlarge m5.16xlarge m5.24xlarge m5.metal
    m5a.large m5a.xlarge m5a.2xlarge m5a.4xlarge m5a.8xlarge m5a.12xlarge m5a.16xlarge m5a.24xlarge
    m5ad.large m5ad.xlarge m5ad.2xlarge m5ad.4xlarge m5ad.8xlarge m5ad.12xlarge m5ad.16xlarge m5ad.24xlarge
    m5d.large m5d.xlarge m5d.2xlarge m5d.4xlarge m5d.8xlarge m5d.12xlarge m5d.16xlarge m5d.24xlarge m5d.metal
    m5dn.large m5dn.xlarge m5dn.2xlarge m5dn.4xlarge m5dn.8xlarge m5dn.12xlarge m5dn.16xlarge m5dn.24xlarge
    m5dn.metal
    m5n.large m5n.xlarge m5n.2xlarge m5n.4xlarge m5n.8xlarge m5n.12xlarge m5n.16xlarge m5n.24xlarge m5n.metal
    m5zn.large m5zn.xlarge m5zn.2xlarge m5zn.3xlarge m5zn.6xlarge m5zn.12xlarge m5zn.metal
    m6a.large m6a.xlarge m6a.2xlarge m6a.4xlarge m6a.8xlarge m6a.12xlarge m6a.16xlarge m6a.24xlarge
    m6a.32xlarge m6a.48xlarge m6a.metal
    m6g.medium m6g.large m6g.xlarge m6g.2xlarge m6g.4xlarge m6g.8xlarge m6g.12xlarge m6g.16xlarge m6g.metal
    m6gd.medium m6gd.large m6gd.xlarge m6gd.2xlarge m6gd.4xlarge m6gd.8xlarge m6gd.12xlarge m6gd.16xlarge
    m6gd.metal
    m6i.large m6i.xlarge m6i.2xlarge m6i.4xlarge m6i.8xlarge m6i.12xlarge m6i.16xlarge m6i.24xlarge
    m6i.32xlarge m6i.metal
    p2.xlarge p2.8xlarge p2.16xlarge
    p3.2xlarge p3.8xlarge p3.16xlarge
    p3dn.24xlarge
    p4d.24xlarge
    r3.large r3.xlarge r3.2xlarge r3.4xlarge r3.8xlarge
    r4.large r4.xlarge r4.2xlarge r4.4xlarge r4.8xlarge r4.16xlarge
    r5.large r5.xlarge r5.2xlarge r5.4xlarge r5.8xlarge r5.12xlarge r5.16xlarge r5.24xlarge r5.metal
    r5a.large r5a.xlarge r5a.2xlarge r5a.4xlarge r5a.8xlarge r5a.12xlarge r5a.16xlarge r5a.24xlarge
    r5ad.large r5ad.xlarge r5ad.2xlarge r5ad.4xlarge r5ad.8xlarge r5ad.12xlarge r5ad.16xlarge r5ad.24xlarge
    r5b.large r5b.xlarge r5b.2xlarge r5b.4xlarge r5b.8xlarge r5b.12xlarge r5b.16xlarge r5b.24xlarge r5b.metal
    r5d.large r5d.xlarge r5d.2xlarge r5d.4xlarge r5d.8xlarge r5d.12xlarge r5d.16xlarge r5d.24xlarge r5d.metal
    r5dn.large r5dn.xlarge r5dn.2xlarge r5dn.4xlarge r5dn.8xlarge r5dn.12xlarge r5dn.16xlarge r5dn.24xlarge
    r5dn.metal
    r5n.large r5n.xlarge r5n.2xlarge r5n.4xlarge r5n.8xlarge r5n.12xlarge r5n.16xlarge r5n.24xlarge r5n.metal
    r6g.medium r6g.large r6g.xlarge r6g.2xlarge r6g.4xlarge r6g.8xlarge r6g.12xlarge r6g.16xlarge r6g.metal
    r6gd.medium r6gd.large r6gd.xlarge r6gd.2xlarge r6gd.4xlarge r6gd.8xlarge r6gd.12xlarge r6gd.16xlarge
    r6gd.metal
    r6i.large r6i.xlarge r6i.2xlarge r6i.4xlarge r6i.8xlarge r6i.12xlarge r6i.16xlarge r6i.24xlarge
    r6i.32xlarge r6i.metal
    t1.micro
    t2.nano t2.micro t2.small t2.medium t2.large t2.xlarge t2.2xlarge
    t3.nano t3.micro t3.small t3.medium t3.large t3.xlarge t3.2xlarge
    t3a.nano t3a.micro t3a.small t3a.medium t3a.large t3a.xlarge t3a.2xlarge
    t4g.nano t4g.micro t4g.small t4g.medium t4g.large t4g.xlarge t4g.2xlarge
    u-12tb1.112xlarge
    u-3tb1.56xlarge
    u-6tb1.56xlarge u-6tb1.112xlarge
    u-9tb1.112xlarge
    vt1.3xlarge vt1.6xlarge vt1.24xlarge
    x1.16xlarge x1.32xlarge
    x1e.xlarge x1e.2xlarge x1e.4xlarge x1e.8xlarge x1e.16xlarge x1e.32xlarge
    x2gd.medium x2gd.large x2gd.xlarge x2gd.2xlarge x2gd.4xlarge x2gd.8xlarge x2gd.12xlarge x2gd.16xlarge
    x2gd.metal
    x2idn.16xlarge x2idn.24xlarge x2idn.32xlarge
    x2iedn.xlarge x2iedn.2xlarge x2iedn.4xlarge x2iedn.8xlarge x2iedn.16xlarge x2iedn.24xlarge
    x2iedn.32xlarge
    x2iezn.2xlarge x2iezn.4xlarge x2iezn.6xlarge x2iezn.8xlarge x2iezn.12xlarge x2iezn.metal
    z1d.large z1d.xlarge z1d.2xlarge z1d.3xlarge z1d.6xlarge z1d.12xlarge z1d.metal
""".split()


def _generator() -> ModuleType:
    name = "gen_instance_types"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "gen_instance_types.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is created
        spec.loader.exec_module(module)
    return sys.modules[name]


# ---- the bundled table ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "vcpus", "gib", "gpus", "model", "chips", "arch"), FACTS)
def test_known_facts(name: str, vcpus: int, gib: float, gpus: int, model: str | None, chips: int, arch: str) -> None:
    assert get_instance_type(name) == InstanceType(name, vcpus, int(gib * 1024), gpus, model, chips, arch)  # type: ignore[arg-type]


def test_counts() -> None:
    families = {name.split(".")[0] for name in INSTANCE_TYPES}
    assert len(INSTANCE_TYPES) == SOURCE["count"] == 1387
    assert len(families) == SOURCE["families"] == 190
    # Every type of the Karpenter v1.14 reference, plus those of Cortex's that it lacks.
    assert SOURCE["source"]["types"] == 1363
    assert [len(s["types"]) for s in SOURCE["supplements"]] == [17, 3, 4]
    assert SOURCE["source"]["types"] + sum(len(s["types"]) for s in SOURCE["supplements"]) == len(INSTANCE_TYPES)
    assert families >= set(
        "t3 t3a t4g m5 m5a m6i m6a m7i m6g m7g c5 c6i c7i c6g c7g r5 r6i r7i r6g g4dn g5 g6 g6e p3 p4d p5 inf1 inf2 trn1".split()
    )
    for family in ("m5", "m6i", "c6i", "r5", "r7i"):
        for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"):
            assert f"{family}.{size}" in INSTANCE_TYPES
    assert "m5a.metal" not in INSTANCE_TYPES  # m5a has no bare-metal size


def test_every_cortex_v0_42_type_is_in_the_table() -> None:
    assert len(CORTEX_V0_42_TYPES) == len(set(CORTEX_V0_42_TYPES)) == SOURCE["required"]["types"] == 501
    assert [name for name in CORTEX_V0_42_TYPES if name not in INSTANCE_TYPES] == []
    # The supplements hold only Cortex types, each once.
    supplemented = [name for s in SOURCE["supplements"] for name in s["types"]]
    assert len(supplemented) == len(set(supplemented))
    assert set(supplemented) <= set(CORTEX_V0_42_TYPES)


def test_header_names_every_source() -> None:
    primary = SOURCE["source"]
    assert primary["repo"] == "aws/karpenter-provider-aws"
    assert primary["path"] == "website/content/en/v1.14/reference/instance-types.md"
    sources = [primary, *SOURCE["supplements"], SOURCE["required"]]
    for source in sources:
        assert source["repo"] and source["path"] and source["title"]
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), source
        assert re.fullmatch(r"[0-9a-f]{40}", source["git_blob"]), source
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}", source["date"]), source
    assert [s["title"] for s in SOURCE["supplements"]] == [
        "Karpenter v1.0 instance-type reference",
        "Karpenter v0.26 instance-type reference",
        "Cortex v0.42 instance metadata",
    ]
    assert SOURCE["supplements"][-1]["types"] == ["c6gn.metal", "cr1.8xlarge", "hs1.8xlarge", "i3p.16xlarge"]
    assert SOURCE["required"]["ref"] == "v0.42.1"


def test_json_is_sorted_and_in_the_generators_format() -> None:
    path = REPO / "cortex_iac" / "data" / "instance_types.json"
    doc = json.loads(path.read_text())
    assert list(doc["types"]) == sorted(doc["types"])
    assert _generator().render(doc) == path.read_text()  # what the generator writes, byte for byte


def test_table_is_consistent() -> None:
    rule = _generator().cortex_is_arm
    for name, instance in INSTANCE_TYPES.items():
        assert instance.name == name
        assert instance.vcpus > 0 and instance.memory_mib >= 512
        assert (instance.gpus > 0) == (instance.gpu_model is not None)
        assert not (instance.gpus and instance.neuron_devices)
        assert instance.arch in ("amd64", "arm64")
        # Cortex's naming rule (family a, or capability g: Graviton) agrees with every arch label.
        assert instance.arch == ("arm64" if rule(name) else "amd64"), name


def test_unknown_type_raises_key_error_saying_how_to_add_it() -> None:
    with pytest.raises(KeyError, match="unknown EC2 instance type 'm5.huge': not in the bundled table; ") as caught:
        get_instance_type("m5.huge")
    assert MISSING_TYPE_HINT in str(caught.value)
    assert MISSING_TYPE_HINT == (
        "the table is generated from the Karpenter v1.14 instance-type reference (2026-07-11); for an EC2 "
        "type newer than that, regenerate cortex_iac/data/instance_types.json with scripts/gen_instance_types.py "
        "from a newer Karpenter reference"
    )


# ---- the generator, on snippets in the format of Karpenter's reference and Cortex's table --------

REFERENCE = """\
---
title: "Instance Types"
---
<!-- this document is generated from hack/docs/instancetypes_gen/main.go -->
## g9x Family
### `g9x.2xlarge`
#### Labels
 | Label | Value |
 |--|--|
 |karpenter.k8s.aws/instance-cpu|8|
 |karpenter.k8s.aws/instance-family|g9x|
 |karpenter.k8s.aws/instance-gpu-count|2|
 |karpenter.k8s.aws/instance-gpu-manufacturer|nvidia|
 |karpenter.k8s.aws/instance-gpu-name|a10g|
 |karpenter.k8s.aws/instance-memory|32768|
 |kubernetes.io/arch|amd64|
 |node.kubernetes.io/instance-type|g9x.2xlarge|
#### Resources
 | Resource | Quantity |
 |--|--|
 |cpu|7910m|
 |memory|27896Mi|
 |nvidia.com/gpu|2|
### `g9ad.xlarge`
#### Labels
 | Label | Value |
 |--|--|
 |karpenter.k8s.aws/instance-cpu|4|
 |karpenter.k8s.aws/instance-gpu-count|1|
 |karpenter.k8s.aws/instance-gpu-manufacturer|amd|
 |karpenter.k8s.aws/instance-gpu-name|radeon-pro-v520|
 |karpenter.k8s.aws/instance-memory|16384|
 |kubernetes.io/arch|amd64|
 |node.kubernetes.io/instance-type|g9ad.xlarge|
#### Resources
 | Resource | Quantity |
 |--|--|
 |amd.com/gpu|1|
## inf9 Family
### `inf9.xlarge`
#### Labels
 | Label | Value |
 |--|--|
 |karpenter.k8s.aws/instance-accelerator-count|1|
 |karpenter.k8s.aws/instance-accelerator-manufacturer|aws|
 |karpenter.k8s.aws/instance-accelerator-name|inferentia|
 |karpenter.k8s.aws/instance-cpu|4|
 |karpenter.k8s.aws/instance-memory|8192|
 |kubernetes.io/arch|amd64|
 |node.kubernetes.io/instance-type|inf9.xlarge|
#### Resources
 | Resource | Quantity |
 |--|--|
 |aws.amazon.com/neuron|1|
 |aws.amazon.com/neuroncore|4|
## m9g Family
### `m9g.medium`
#### Labels
 | Label | Value |
 |--|--|
 |karpenter.k8s.aws/instance-cpu|1|
 |karpenter.k8s.aws/instance-memory|4096|
 |kubernetes.io/arch|arm64|
 |node.kubernetes.io/instance-type|m9g.medium|
#### Resources
 | Resource | Quantity |
 |--|--|
 |cpu|940m|
"""

OLDER_REFERENCE = """\
### `p9.xlarge`
#### Labels
 | Label | Value |
 |--|--|
 |karpenter.k8s.aws/instance-cpu|4|
 |karpenter.k8s.aws/instance-gpu-count|1|
 |karpenter.k8s.aws/instance-gpu-manufacturer|nvidia|
 |karpenter.k8s.aws/instance-gpu-name|k80|
 |karpenter.k8s.aws/instance-memory|62464|
 |kubernetes.io/arch|amd64|
#### Resources
 | Resource | Quantity |
 |--|--|
 |nvidia.com/gpu|1|
### `m9g.large`
#### Labels
 | Label | Value |
 |--|--|
 |karpenter.k8s.aws/instance-cpu|2|
 |karpenter.k8s.aws/instance-memory|8192|
 |kubernetes.io/arch|arm64|
"""

CORTEX = """\
var InstanceMetadatas = map[string]map[string]InstanceMetadata{
	"us-east-1": {
		"m9g.medium": {Region: "us-east-1", Type: "m9g.medium", Memory: kresource.MustParse("4096Mi"), CPU: kresource.MustParse("1"), GPU: 0, Inf: 0, Price: 0.1},
		"p9.xlarge": {Region: "us-east-1", Type: "p9.xlarge", Memory: kresource.MustParse("62464Mi"), CPU: kresource.MustParse("4"), GPU: 1, Inf: 0, Price: 0.9},
		"z9gn.metal": {Region: "us-east-1", Type: "z9gn.metal", Memory: kresource.MustParse("131072Mi"), CPU: kresource.MustParse("64"), GPU: 0, Inf: 0, Price: 3.4},
	},
	"eu-west-1": {
		"z9gn.metal": {Region: "eu-west-1", Type: "z9gn.metal", Memory: kresource.MustParse("131072Mi"), CPU: kresource.MustParse("64"), GPU: 0, Inf: 0, Price: 3.5},
		"q9.large": {Region: "eu-west-1", Type: "q9.large", Memory: kresource.MustParse("4096Mi"), CPU: kresource.MustParse("2"), GPU: 0, Inf: 1, Price: 0.2},
	},
}
"""


def test_parser_reads_labels_and_resources() -> None:
    gen = _generator()
    facts = {name: list(gen.astuple(f)) for name, f in gen.parse_karpenter_reference(REFERENCE).items()}
    assert facts == {
        "g9x.2xlarge": [8, 32768, 2, "A10G", 0, "amd64"],
        "g9ad.xlarge": [4, 16384, 0, None, 0, "amd64"],  # AMD GPUs are not counted
        "inf9.xlarge": [4, 8192, 0, None, 1, "amd64"],
        "m9g.medium": [1, 4096, 0, None, 0, "arm64"],
    }


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace(" |karpenter.k8s.aws/instance-memory|4096|\n", ""), "m9g.medium: label karpenter.k8s.aws/instance-memory is missing"),
    (lambda t: t.replace("|kubernetes.io/arch|arm64|", "|kubernetes.io/arch|s390x|"), "m9g.medium: kubernetes.io/arch 's390x'"),
    (lambda t: t.replace("|nvidia.com/gpu|2|", "|nvidia.com/gpu|1|"), "g9x.2xlarge: resource nvidia.com/gpu 1 but 2 NVIDIA GPUs"),
    (lambda t: t.replace("|karpenter.k8s.aws/instance-cpu|8|", "|karpenter.k8s.aws/instance-cpu|eight|"), "'eight' is not an integer"),
    (lambda t: t.replace("### `", "### "), "not a Karpenter instance-type reference"),
])
def test_parser_refuses_what_it_cannot_read(edit: object, message: str) -> None:
    gen = _generator()
    with pytest.raises(gen.SourceError, match=re.escape(message)):
        gen.parse_karpenter_reference(edit(REFERENCE))  # type: ignore[operator]


def _sources(tmp_path: Path, **texts: str) -> dict[str, object]:
    gen = _generator()
    out = {}
    for key, text in texts.items():
        (tmp_path / key).write_text(text)
        out[key] = gen._source([str(tmp_path / key), f"repo=o/{key}", f"path={key}.md", "commit=" + "a" * 40,
                                "date=2026-01-02T03:04:05+00:00", f"title={key}"])
    return out


def test_build_takes_cortex_types_from_the_supplements_then_cortex(tmp_path: Path) -> None:
    gen = _generator()
    s = _sources(tmp_path, primary=REFERENCE, older=OLDER_REFERENCE, cortex=CORTEX)
    doc = gen.build(s["primary"], [s["older"]], s["cortex"])
    assert doc["types"] == {
        "g9ad.xlarge": [4, 16384, 0, None, 0, "amd64"],
        "g9x.2xlarge": [8, 32768, 2, "A10G", 0, "amd64"],
        "inf9.xlarge": [4, 8192, 0, None, 1, "amd64"],
        "m9g.medium": [1, 4096, 0, None, 0, "arm64"],
        "p9.xlarge": [4, 62464, 1, "K80", 0, "amd64"],  # the older reference (Cortex names no GPU model)
        "q9.large": [2, 4096, 0, None, 1, "amd64"],  # Cortex's own table
        "z9gn.metal": [64, 131072, 0, None, 0, "arm64"],  # Cortex's table, arch by Cortex's rule
    }
    header = doc["header"]
    assert header["source"] == {
        "repo": "o/primary", "path": "primary.md", "commit": "a" * 40, "date": "2026-01-02T03:04:05+00:00",
        "title": "primary", "git_blob": gen.git_blob_id(REFERENCE.encode()), "types": 4,
    }
    assert [(x["title"], x["types"]) for x in header["supplements"]] == [
        ("older", ["p9.xlarge"]),  # m9g.large is no Cortex type: not taken
        ("cortex", ["q9.large", "z9gn.metal"]),
    ]
    assert (header["required"]["types"], header["count"], header["families"]) == (4, 7, 7)
    text = gen.render(doc)
    assert json.loads(text) == doc
    assert text == gen.render(gen.build(s["primary"], [s["older"]], s["cortex"]))  # deterministic


def test_build_refuses_a_cortex_gpu_type_no_reference_lists(tmp_path: Path) -> None:
    gen = _generator()
    s = _sources(tmp_path, primary=REFERENCE, cortex=CORTEX)
    with pytest.raises(gen.SourceError, match=r"Cortex types with GPUs in no Karpenter reference given .*: p9\.xlarge"):
        gen.build(s["primary"], [], s["cortex"])


def test_git_blob_id_is_gits() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert _generator().git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_main_writes_the_file(tmp_path: Path) -> None:
    gen = _generator()
    (tmp_path / "ref.md").write_text(REFERENCE)
    out = tmp_path / "out.json"
    described = ["repo=o/r", "path=ref.md", "commit=" + "b" * 40, "date=2026-01-02T03:04:05+00:00"]
    assert gen.main(["--karpenter", str(tmp_path / "ref.md"), *described, "--output", str(out)]) == 0
    assert list(json.loads(out.read_text())["types"]) == ["g9ad.xlarge", "g9x.2xlarge", "inf9.xlarge", "m9g.medium"]
    assert gen.main(["--karpenter", str(tmp_path / "ref.md"), "repo=o/r", "--output", str(out)]) == 1
