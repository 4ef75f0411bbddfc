"""The plan file: a deterministic JSON record of what a program declares, and its Kubernetes objects.

Same program + same config -> byte-identical file: resources sorted by URN, keys sorted, no
timestamps, no random ids (the recording engine in preview mode leaves every output that is not an
input unknown, so nothing made-up leaks in).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cortex_iac import _yaml
from cortex_iac.errors import PlanError

if TYPE_CHECKING:  # the engine imports the Pulumi SDK, which reading a plan does not need
    from cortex_iac.plan.engine import RecordedResource, Recording

# 2: each resource also records its ignore_changes, replace_on_changes, delete_before_replace and
# aliases (the URNs it had before).
SCHEMA_VERSION = 2
# Version 1 files (written by an older cortex, e.g. for a pull request's base commit) are still read;
# their resources have no options recorded, which load_plan fills in as none.
READABLE_VERSIONS = (1, 2)
_OPTION_DEFAULTS: dict[str, Any] = {
    "ignore_changes": [], "replace_on_changes": [], "delete_before_replace": False, "aliases": [],
}

# Resource types whose inputs are not one Kubernetes object.
_NOT_OBJECTS = ("kubernetes:helm.sh/", "kubernetes:yaml:", "kubernetes:kustomize:", "pulumi:providers:")


def to_plan(recording: Recording) -> dict[str, Any]:
    """The plan document of a recording (see module docstring)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "project": recording.project,
        "stack": recording.stack,
        "config": recording.config,
        "resources": [r.to_json() for r in sorted(recording.resources, key=lambda r: r.urn)],
        "outputs": recording.outputs,
    }


def _encoder() -> json.JSONEncoder:
    return json.JSONEncoder(indent=2, sort_keys=True, ensure_ascii=False)


def dumps(plan: dict[str, Any]) -> str:
    """Serialise a plan deterministically."""
    return _encoder().encode(plan) + "\n"


def write(plan: dict[str, Any], path: Path) -> None:
    """Write ``dumps(plan)`` to ``path`` without holding it in memory: the encoder's pieces go out in
    batches (the whole text and its millions of pieces were the peak of a large ``cortex plan``)."""
    batch: list[str] = []
    with path.open("w", encoding="utf-8") as out:
        for piece in _encoder().iterencode(plan):
            batch.append(piece)
            if len(batch) >= 8192:
                out.write("".join(batch))
                batch.clear()
        batch.append("\n")
        out.write("".join(batch))


def kubernetes_objects(recording: Recording) -> list[dict[str, Any]]:
    """Every Kubernetes object the program declares, as the manifest it would apply, in URN order."""
    objects = []
    for r in sorted(recording.resources, key=lambda r: r.urn):
        if _is_kubernetes_object(r):
            obj = {k: v for k, v in r.inputs.items() if not k.startswith("__")}
            objects.append(obj)
    return objects


def _is_kubernetes_object(r: RecordedResource) -> bool:
    return r.custom and r.type.startswith("kubernetes:") and not r.type.startswith(_NOT_OBJECTS)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-") or "unnamed"


def write_manifests(objects: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write each object as ``<kind>.<namespace>.<name>.yaml`` under ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        parts = [obj.get("kind", "object"), meta.get("namespace", "_cluster"), meta.get("name", "unnamed")]
        path = out_dir / (".".join(_slug(str(p)) for p in parts) + ".yaml")
        if path in written:
            raise PlanError(f"two Kubernetes objects would both be written to {path}: same kind, namespace and name")
        path.write_text(_yaml.dump(obj))
        written.append(path)
    return written


def load_plan(path: str | Path) -> dict[str, Any]:
    """Read a plan file, checking it is one this version understands (schema versions 1 and 2; the
    resources of a version 1 file get the version 2 resource options as none)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise PlanError(f"{p}: no such plan file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PlanError(f"{p}: not a JSON plan file ({e})") from None
    if not isinstance(doc, dict):
        raise PlanError(f"{p}: a plan file is a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise PlanError(f"{p}: schema_version is {version!r}; this cortex reads versions {readable} (re-run cortex plan)")
    for key in ("project", "stack", "config", "resources", "outputs"):
        if key not in doc:
            raise PlanError(f"{p}: missing field {key!r}")
    if not isinstance(doc["resources"], list):
        raise PlanError(f"{p}: 'resources' must be a list")
    for i, r in enumerate(doc["resources"]):
        missing = [k for k in ("urn", "type", "name", "inputs") if not isinstance(r, dict) or k not in r]
        if missing:
            raise PlanError(f"{p}: resources[{i}] is missing {', '.join(missing)}")
        if version == 1:
            for key, default in _OPTION_DEFAULTS.items():
                r.setdefault(key, copy.deepcopy(default))
    return doc


def tree_lines(recording: Recording) -> list[str]:
    """The resource tree as indented lines of ``type  name``, children under their parents."""
    by_parent: dict[str | None, list[RecordedResource]] = {}
    urns = {r.urn for r in recording.resources}
    for r in recording.resources:
        parent = r.parent if r.parent in urns else None
        by_parent.setdefault(parent, []).append(r)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for r in sorted(by_parent.get(parent, []), key=lambda r: (r.type, r.name)):
            lines.append(f"{'  ' * depth}{r.type}  {r.name}")
            walk(r.urn, depth + 1)

    walk(None, 0)
    return lines
