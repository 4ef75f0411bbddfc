"""The checkov step's skip lists and its split of objects into cortex_iac's own containers and the user's."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import yaml

from cortex_iac.render.realtime import render_api
from cortex_iac.render.workload import RUNTIME_COMMAND
from cortex_iac.specs import RealtimeApiSpec, load_apis
from cortex_iac.versions import ENVOY_IMAGE

REPO = Path(__file__).resolve().parents[1]


def _scan_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("checkov_scan", REPO / "scripts" / "checkov_scan.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["checkov_scan"] = module
    spec.loader.exec_module(module)
    return module


def _skips(name: str) -> list[str]:
    return list(yaml.safe_load((REPO / name).read_text())["skip-check"])


def test_the_user_image_list_extends_the_platform_list() -> None:
    platform, everything = _skips(".checkov.yaml"), _skips(".checkov-user-images.yaml")
    assert everything[: len(platform)] == platform
    assert len(set(everything)) == len(everything)
    # Every skip has its reason written next to it.
    text = (REPO / ".checkov.yaml").read_text()
    for check in platform:
        before = text.split(f"- {check}")[0].rstrip().splitlines()[-1]
        assert before.lstrip().startswith("#"), check


def test_ours_keeps_the_sidecar_and_the_runtime_and_drops_the_users_image() -> None:
    scan = _scan_module()
    (spec,) = load_apis([{"name": "m", "kind": "RealtimeAPI", "pod": {"containers": [
        {"name": "api", "image": "r.example/model:latest"}, {"name": "h", "handler": {"path": "h.py"}}]}}],
        origin="test")
    assert isinstance(spec, RealtimeApiSpec)
    objects = render_api(spec, runtime_image="r.example/runtime@sha256:" + "a" * 64,
                         handler_sources={"h": "def handle(payload):\n    return payload\n"})
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    ours = scan.without_user_containers(copy.deepcopy(deployment), scan.platform_images())
    names = [(c["name"], c["image"]) for c in ours["spec"]["template"]["spec"]["containers"]]
    # A pod with a handler has no sidecar (the runtime admits requests itself).
    assert names == [("h", "r.example/runtime@sha256:" + "a" * 64)]
    assert tuple(ours["spec"]["template"]["spec"]["containers"][0]["command"]) == RUNTIME_COMMAND
    (image_only,) = load_apis([{"name": "i", "kind": "RealtimeAPI", "pod": {"containers": [
        {"name": "api", "image": "r.example/model:latest"}]}}], origin="test")
    assert isinstance(image_only, RealtimeApiSpec)
    (deployment,) = [o for o in render_api(image_only) if o["kind"] == "Deployment"]
    ours = scan.without_user_containers(copy.deepcopy(deployment), scan.platform_images())
    assert [(c["name"], c["image"]) for c in ours["spec"]["template"]["spec"]["containers"]] == [
        ("proxy", ENVOY_IMAGE)]
    # Objects without a pod pass as they are; a pod with nothing of ours is left out.
    service = next(o for o in objects if o["kind"] == "Service")
    assert scan.without_user_containers(copy.deepcopy(service), scan.platform_images()) == service
    job = {"kind": "Job", "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "u:1"}]}}}}
    assert scan.without_user_containers(job, scan.platform_images()) is None
