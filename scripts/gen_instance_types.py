#!/usr/bin/env python3
"""Generate cortex_iac/data/instance_types.json from Karpenter's instance-type reference.

Karpenter (aws/karpenter-provider-aws) publishes a generated page per release,
``website/content/en/<version>/reference/instance-types.md``: one ``### `<type>` `` section per
EC2 instance type, each with a table of labels (``karpenter.k8s.aws/instance-cpu``,
``karpenter.k8s.aws/instance-memory`` in MiB, ``karpenter.k8s.aws/instance-gpu-count`` /
``-gpu-name`` / ``-gpu-manufacturer``, ``kubernetes.io/arch``, ...) and a table of resources
(``nvidia.com/gpu``, ``aws.amazon.com/neuron``, ...). This script reads such a page (no network),
takes every type it lists, and writes the facts cortex_iac needs:

- ``vcpus``: label ``karpenter.k8s.aws/instance-cpu``;
- ``memory_mib``: label ``karpenter.k8s.aws/instance-memory``;
- ``gpus`` / ``gpu_model``: NVIDIA GPUs only: label ``instance-gpu-count`` when
  ``instance-gpu-manufacturer`` is ``nvidia`` (it must equal the ``nvidia.com/gpu`` resource when
  that is listed); the model is label ``instance-gpu-name`` upper-cased (``t4`` -> ``T4``), None
  without GPUs. AMD (g4ad), Habana (dl1) and fractional (g6f) GPUs count 0;
- ``neuron_devices``: resource ``aws.amazon.com/neuron`` (Inferentia / Trainium chips); pages older
  than that resource give label ``instance-accelerator-count`` of manufacturer ``aws``;
- ``arch``: label ``kubernetes.io/arch`` (``amd64`` or ``arm64``).

Cortex v0.42 accepted the instance types of its generated table (cortexlabs/cortex,
``pkg/lib/aws/resource_metadata.go``, ``InstanceMetadatas``). With ``--cortex`` every one of those
must end up in the output: a type the primary page lacks is taken from the ``--supplement`` pages
(older Karpenter references, in the order given), and only then from Cortex's own table (vCPUs,
memory, Inferentia chips; arch by Cortex's rule: family ``a`` or capability letter ``g`` is arm64,
as ``IsARMInstance`` in Cortex's ``pkg/lib/aws/ec2.go``). A type with GPUs cannot come from
Cortex's table, which names no GPU model: the script stops instead. The header of the output
names each source (repo, path, commit, date, git blob id of the file read) and which types came
from it.

Example (files extracted with ``git show <commit>:<path>``)::

    python scripts/gen_instance_types.py \\
      --karpenter v1.14.md repo=aws/karpenter-provider-aws \\
        path=website/content/en/v1.14/reference/instance-types.md commit=<sha> date=<iso date> \\
        "title=Karpenter v1.14 instance-type reference" \\
      --supplement v1.0.md repo=... path=... commit=... date=... title=... \\
      --cortex resource_metadata.go repo=cortexlabs/cortex path=pkg/lib/aws/resource_metadata.go \\
        commit=<sha> date=<iso date> ref=v0.42.1 "title=Cortex v0.42 instance metadata" \\
      --output cortex_iac/data/instance_types.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

COLUMNS = ("vcpus", "memory_mib", "gpus", "gpu_model", "neuron_devices", "arch")
ARCHES = ("amd64", "arm64")
DESCRIPTOR_KEYS = ("repo", "path", "commit", "date")
OPTIONAL_KEYS = ("title", "ref")

_SECTION = re.compile(r"^### `([^`]+)`\s*$", re.MULTILINE)
_ROW = re.compile(r"^\s*\|([^|]+)\|([^|]*)\|\s*$", re.MULTILINE)
_CORTEX_RECORD = re.compile(
    r'\{Region: "(?P<region>[^"]+)", Type: "(?P<type>[^"]+)", '
    r'Memory: kresource\.MustParse\("(?P<memory>[^"]+)"\), CPU: kresource\.MustParse\("(?P<cpu>[^"]+)"\), '
    r"GPU: (?P<gpu>\d+), Inf: (?P<inf>\d+),"
)
_DIGITS = re.compile(r"[0-9]+")

_CPU = "karpenter.k8s.aws/instance-cpu"
_MEMORY = "karpenter.k8s.aws/instance-memory"
_GPU_COUNT = "karpenter.k8s.aws/instance-gpu-count"
_GPU_NAME = "karpenter.k8s.aws/instance-gpu-name"
_GPU_MAKER = "karpenter.k8s.aws/instance-gpu-manufacturer"
_ACCEL_COUNT = "karpenter.k8s.aws/instance-accelerator-count"
_ACCEL_MAKER = "karpenter.k8s.aws/instance-accelerator-manufacturer"
_ARCH = "kubernetes.io/arch"
_TYPE = "node.kubernetes.io/instance-type"
_NVIDIA = "nvidia.com/gpu"
_NEURON = "aws.amazon.com/neuron"


class SourceError(ValueError):
    """An input file is not in the expected format, or the sources cannot cover what is required."""


@dataclass(frozen=True)
class Facts:
    vcpus: int
    memory_mib: int
    gpus: int
    gpu_model: str | None
    neuron_devices: int
    arch: str


def _int(value: str, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SourceError(f"{what}: {value!r} is not an integer") from None
    if number < 0:
        raise SourceError(f"{what}: {value!r} is negative")
    return number


def _facts(name: str, labels: dict[str, str], resources: dict[str, str]) -> Facts:
    for key in (_CPU, _MEMORY, _ARCH):
        if key not in labels:
            raise SourceError(f"{name}: label {key} is missing")
    if labels.get(_TYPE, name) != name:
        raise SourceError(f"{name}: label {_TYPE} is {labels[_TYPE]!r}")
    arch = labels[_ARCH]
    if arch not in ARCHES:
        raise SourceError(f"{name}: {_ARCH} {arch!r} is not one of {', '.join(ARCHES)}")
    gpus = 0
    if labels.get(_GPU_MAKER) == "nvidia":
        gpus = _int(labels.get(_GPU_COUNT, ""), f"{name}: label {_GPU_COUNT}")
    if _NVIDIA in resources and _int(resources[_NVIDIA], f"{name}: resource {_NVIDIA}") != gpus:
        raise SourceError(f"{name}: resource {_NVIDIA} {resources[_NVIDIA]} but {gpus} NVIDIA GPUs in the labels")
    model = None
    if gpus:
        if not labels.get(_GPU_NAME):
            raise SourceError(f"{name}: {gpus} NVIDIA GPUs but no label {_GPU_NAME}")
        model = labels[_GPU_NAME].upper()
    if _NEURON in resources:
        neuron = _int(resources[_NEURON], f"{name}: resource {_NEURON}")
    elif labels.get(_ACCEL_MAKER) == "aws":
        neuron = _int(labels.get(_ACCEL_COUNT, ""), f"{name}: label {_ACCEL_COUNT}")
    else:
        neuron = 0
    return Facts(
        vcpus=_int(labels[_CPU], f"{name}: label {_CPU}"),
        memory_mib=_int(labels[_MEMORY], f"{name}: label {_MEMORY}"),
        gpus=gpus,
        gpu_model=model,
        neuron_devices=neuron,
        arch=arch,
    )


def parse_karpenter_reference(text: str) -> dict[str, Facts]:
    """The facts of every instance type of a Karpenter instance-type reference page (markdown)."""
    starts = list(_SECTION.finditer(text))
    if not starts:
        raise SourceError("no '### `<instance type>`' sections: not a Karpenter instance-type reference")
    table: dict[str, Facts] = {}
    for i, match in enumerate(starts):
        name = match.group(1)
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        body = text[match.end() : end]
        labels_at, resources_at = body.find("#### Labels"), body.find("#### Resources")
        if labels_at < 0:
            raise SourceError(f"{name}: no '#### Labels' table")
        labels_text = body[labels_at : resources_at if resources_at > labels_at else len(body)]
        resources_text = body[resources_at:] if resources_at >= 0 else ""
        labels = _rows(labels_text, name)
        resources = _rows(resources_text, name)
        if name in table:
            raise SourceError(f"{name}: listed twice")
        table[name] = _facts(name, labels, resources)
    return table


def _rows(text: str, name: str) -> dict[str, str]:
    rows: dict[str, str] = {}
    for key, value in _ROW.findall(text):
        key, value = key.strip(), value.strip()
        if key in ("Label", "Resource") or set(key) <= {"-"}:
            continue  # the header row and the |--|--| separator
        if key in rows:
            raise SourceError(f"{name}: {key} listed twice")
        rows[key] = value
    return rows


def cortex_is_arm(name: str) -> bool:
    """Cortex v0.42's rule (pkg/lib/aws/ec2.go, IsARMInstance): ``[family][generation][capabilities]``;
    arm64 when the family is ``a`` or a capability letter is ``g``."""
    prefix = name.split(".")[0]
    generations = list(_DIGITS.finditer(prefix))
    if not generations:
        raise SourceError(f"{name}: not of the form [family][generation][capabilities].[size]")
    last = generations[-1]
    return prefix[: last.start()] == "a" or "g" in prefix[last.end() :]


def parse_cortex_metadata(text: str) -> dict[str, Facts | None]:
    """Cortex's ``InstanceMetadatas`` (every region): each type's facts, or None for a type with
    GPUs (Cortex's table gives no GPU model, and counts AMD GPUs too)."""
    start = text.find("var InstanceMetadatas")
    if start < 0:
        raise SourceError("no 'var InstanceMetadatas': not Cortex's resource_metadata.go")
    seen: dict[str, set[tuple[str, str, str, str]]] = {}
    for m in _CORTEX_RECORD.finditer(text, start):
        seen.setdefault(m["type"], set()).add((m["cpu"], m["memory"], m["gpu"], m["inf"]))
    if not seen:
        raise SourceError("InstanceMetadatas has no instance records")
    table: dict[str, Facts | None] = {}
    for name, values in seen.items():
        if len(values) != 1:
            raise SourceError(f"{name}: Cortex's regions disagree: {sorted(values)}")
        ((cpu, memory, gpu, inf),) = values
        if not memory.endswith("Mi"):
            raise SourceError(f"{name}: memory {memory!r} is not in Mi")
        if int(gpu):
            table[name] = None
            continue
        table[name] = Facts(
            vcpus=_int(cpu, f"{name}: CPU"),
            memory_mib=_int(memory[:-2], f"{name}: Memory"),
            gpus=0,
            gpu_model=None,
            neuron_devices=_int(inf, f"{name}: Inf"),
            arch="arm64" if cortex_is_arm(name) else "amd64",
        )
    return table


def _cortex_cpu_memory(text: str) -> dict[str, tuple[int, int]]:
    start = text.find("var InstanceMetadatas")
    return {m["type"]: (int(m["cpu"]), int(m["memory"][:-2])) for m in _CORTEX_RECORD.finditer(text, start)}


def git_blob_id(data: bytes) -> str:
    """The id git gives a file of these bytes (``git rev-parse <commit>:<path>``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Source:
    file: Path
    descriptor: dict[str, str]
    data: bytes

    def header(self) -> dict[str, Any]:
        return {**self.descriptor, "git_blob": git_blob_id(self.data)}

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


def _source(values: list[str]) -> Source:
    file, *pairs = values
    descriptor: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in DESCRIPTOR_KEYS + OPTIONAL_KEYS:
            raise SourceError(f"{pair!r}: expected KEY=VALUE with KEY one of {', '.join(DESCRIPTOR_KEYS + OPTIONAL_KEYS)}")
        descriptor[key] = value
    missing = [k for k in DESCRIPTOR_KEYS if not descriptor.get(k)]
    if missing:
        raise SourceError(f"{file}: describe the source with {', '.join(k + '=' for k in missing)}")
    return Source(Path(file), descriptor, Path(file).read_bytes())


def build(primary: Source, supplements: list[Source], cortex: Source | None) -> dict[str, Any]:
    """The document to write: header (sources, which types came from where) and types."""
    types: dict[str, Facts] = dict(parse_karpenter_reference(primary.text))
    header: dict[str, Any] = {
        "about": (
            "EC2 instance types: vCPUs, memory (MiB), NVIDIA GPUs (count, model), Neuron devices "
            "(aws.amazon.com/neuron: Inferentia/Trainium chips), CPU architecture. Generated by "
            "scripts/gen_instance_types.py from the sources below; do not edit by hand."
        ),
        "columns": list(COLUMNS),
        "source": {**primary.header(), "types": len(types)},
        "supplements": [],
    }
    if cortex is not None:
        cortex_table = parse_cortex_metadata(cortex.text)
        required = sorted(cortex_table)
        header["required"] = {
            **cortex.header(),
            "what": "every instance type of Cortex's InstanceMetadatas table (the types Cortex accepted)",
            "types": len(required),
        }
        wanted = [name for name in required if name not in types]
        for supplement in supplements:
            table = parse_karpenter_reference(supplement.text)
            taken = [name for name in wanted if name in table]
            types.update((name, table[name]) for name in taken)
            header["supplements"].append({**supplement.header(), "types": taken})
            wanted = [name for name in wanted if name not in table]
        no_facts = [name for name in wanted if cortex_table[name] is None]
        if no_facts:
            raise SourceError(
                f"Cortex types with GPUs in no Karpenter reference given (Cortex names no GPU model): {', '.join(no_facts)}"
            )
        for name in wanted:
            facts = cortex_table[name]
            assert facts is not None
            types[name] = facts
        header["supplements"].append({**cortex.header(), "types": wanted})
        header["cross_check"] = _cross_check(types, cortex.text, wanted)
    elif supplements:
        raise SourceError("--supplement fills in the types --cortex requires; give --cortex too")
    header["count"] = len(types)
    header["families"] = len({name.split(".")[0] for name in types})
    return {"header": header, "types": {name: list(astuple(types[name])) for name in sorted(types)}}


def _cross_check(types: dict[str, Facts], cortex_text: str, from_cortex: list[str]) -> dict[str, Any]:
    """Where Cortex's vCPUs/memory differ from the Karpenter facts used, and whether Cortex's arm64
    rule agrees with Karpenter's arch label for every shared type (else the rule is not trusted)."""
    differs = []
    for name, (cpu, memory) in sorted(_cortex_cpu_memory(cortex_text).items()):
        if name in from_cortex or name not in types:
            continue
        facts = types[name]
        if (cpu, memory) != (facts.vcpus, facts.memory_mib):
            differs.append(f"{name}: Cortex {cpu} vCPUs {memory} MiB, table {facts.vcpus} vCPUs {facts.memory_mib} MiB")
    arch_rule = [
        name for name in _cortex_cpu_memory(cortex_text)
        if name not in from_cortex and ("arm64" if cortex_is_arm(name) else "amd64") != types[name].arch
    ]
    if arch_rule:
        raise SourceError(f"Cortex's arm64 rule disagrees with Karpenter's arch label for {', '.join(sorted(arch_rule))}")
    return {
        "cortex_facts_that_differ": differs,
        "cortex_arch_rule": "agrees with Karpenter's kubernetes.io/arch for every Cortex type Karpenter lists",
    }


def render(doc: dict[str, Any]) -> str:
    """Deterministic JSON: the header indented, one line per instance type, sorted by name."""
    header = json.dumps(doc["header"], indent=2, sort_keys=True, ensure_ascii=False).replace("\n", "\n  ")
    rows = [f"    {json.dumps(name)}: {json.dumps(row)}" for name, row in doc["types"].items()]
    return "{\n" + f'  "header": {header},\n' + '  "types": {\n' + ",\n".join(rows) + "\n  }\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source_help = "FILE then repo=R path=P commit=C date=D [title=T] [ref=R]"
    parser.add_argument("--karpenter", nargs="+", required=True, metavar="ARG",
                        help=f"the primary Karpenter instance-types.md: {source_help}")
    parser.add_argument("--supplement", nargs="+", action="append", default=[], metavar="ARG",
                        help=f"an older Karpenter instance-types.md for required types the primary lacks: {source_help}")
    parser.add_argument("--cortex", nargs="+", metavar="ARG",
                        help=f"Cortex's pkg/lib/aws/resource_metadata.go (its types are required): {source_help}")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "cortex_iac/data/instance_types.json")
    args = parser.parse_args(argv)
    try:
        doc = build(_source(args.karpenter), [_source(s) for s in args.supplement], _source(args.cortex) if args.cortex else None)
    except (SourceError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.output.write_text(render(doc))
    header = doc["header"]
    print(f"wrote {args.output}: {header['count']} types, {header['families']} families", file=sys.stderr)
    for s in header["supplements"]:
        print(f"  from {s.get('title', s['path'])}: {len(s['types'])} {' '.join(s['types'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
