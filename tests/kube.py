"""Validate rendered Kubernetes objects with real schemas.

Built-in kinds go through ``kubernetes_validate`` in strict mode (unknown fields rejected) for the
Kubernetes version the cluster pins. Custom kinds go through the upstream CRD's openAPIV3Schema from
``../shared/schemas/crds/``, made strict the same way: an unknown field would be pruned silently by
the API server, so a typo in a rendered object would otherwise go unnoticed.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from cortex_iac.plan.engine import SECRET
from cortex_iac.versions import KUBERNETES_VERSION
from tests.needs import missing

CRD_DIR = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "crds"

BUILTIN_GROUPS = {
    "", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "admissionregistration.k8s.io",
    "apiextensions.k8s.io", "discovery.k8s.io", "node.k8s.io", "certificates.k8s.io",
}


# Kinds we render whose CRD is not among the shared schemas yet. Each entry is a known gap, named in
# the closing note, not a silent pass: `validate_object` reports it through `unvalidated`.
NO_SCHEMA_YET = {("karpenter.sh", "v1alpha1", "NodeOverlay")}
unvalidated: list[str] = []


def need_crds() -> Path:
    """The CRD folder, or skip: it ships in the project's shared/ folder, not on a user's machine."""
    if not CRD_DIR.is_dir():
        missing(f"CRD schemas not found at {CRD_DIR} (shared/ is only beside the repo in CI and dev)")
    return CRD_DIR


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def _crd_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in sorted(need_crds().glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            # metadata is ObjectMeta, validated by the API server itself; the CRD only says "object".
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            schemas[(group, version["name"], kind)] = _strict(schema)
    return schemas


def validate_object(obj: dict[str, Any]) -> None:
    """Raise AssertionError naming the object and the failing path if ``obj`` is not valid."""
    api_version = obj.get("apiVersion", "")
    kind = obj.get("kind", "")
    name = obj.get("metadata", {}).get("name", "?")
    group, _, version = api_version.rpartition("/")
    where = f"{kind}/{name} ({api_version})"
    if group in BUILTIN_GROUPS:
        if kind == "Secret":
            # A Secret's data from a Pulumi secret is recorded as the secret marker as a whole (never
            # in clear); validate the rest of the object with that data left out.
            obj = {k: v for k, v in obj.items() if not (k in ("data", "stringData") and v == SECRET)}
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            raise AssertionError(f"{where}: {path}: {e.message}") from None
        return
    schema = _crd_schemas().get((group, version, kind))
    if schema is None and (group, version, kind) in NO_SCHEMA_YET:
        unvalidated.append(where)
        return
    if schema is None:
        raise AssertionError(f"{where}: no CRD schema for this group/version/kind in {CRD_DIR}")
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        path = ".".join(str(p) for p in e.path)
        raise AssertionError(f"{where}: {path}: {e.message}")


def validate_all(objects: list[dict[str, Any]]) -> int:
    """Validate every object; return how many were checked (so callers can assert it is not zero)."""
    for obj in objects:
        validate_object(obj)
    return len(objects)
