"""A container without compute.mem gets a memory request (no limit), and the fit check counts it."""

from __future__ import annotations

from typing import Any

from cortex_iac.render.realtime import render_api
from cortex_iac.specs import RealtimeApiSpec, load_apis
from cortex_iac.specs.placement import pod_requests
from cortex_iac.specs.pod import DEFAULT_MEM_REQUEST


def _spec(compute: dict[str, Any]) -> RealtimeApiSpec:
    (spec,) = load_apis([{"name": "m", "kind": "RealtimeAPI",
                          "pod": {"containers": [{"name": "api", "image": "r.example/m:1", "compute": compute}]}}],
                        origin="test")
    assert isinstance(spec, RealtimeApiSpec)
    return spec


def _resources(spec: RealtimeApiSpec) -> dict[str, Any]:
    (deployment,) = [o for o in render_api(spec) if o["kind"] == "Deployment"]
    (api,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "api"]
    return dict(api["resources"])


def test_no_mem_means_a_256mi_request_and_no_limit() -> None:
    assert str(DEFAULT_MEM_REQUEST) == "256Mi"
    assert _resources(_spec({})) == {"requests": {"cpu": "200m", "memory": "256Mi"}}
    assert _resources(_spec({"cpu": None})) == {"requests": {"memory": "256Mi"}}


def test_mem_given_is_request_and_limit() -> None:
    assert _resources(_spec({"mem": "1Gi"})) == {"requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}


def test_fit_check_counts_the_default_request() -> None:
    # 64Mi the sidecar's, 256Mi the container's default.
    assert pod_requests(_spec({})).memory == 320 * 1024 * 1024
    assert pod_requests(_spec({"mem": "1Gi"})).memory == (1024 + 64) * 1024 * 1024
