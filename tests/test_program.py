"""The ready program's stack config: ``cortex:runtimeImage`` reaches every API's handler container,
and handler paths of inline specs are taken from the stack directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cortex_iac.errors import SpecError
from cortex_iac.plan.engine import Recording, record
from cortex_iac.program import deploy

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cortex-serving:src-0123456789abcdef"
CLUSTER = {"cluster_name": "cortex-test", "region": "us-east-1", "availability_zones": ["us-east-1a", "us-east-1b"],
           "node_groups": [{"name": "cpu", "instance_type": "m5.large"}]}
APIS = [
    {"name": "echo", "kind": "RealtimeAPI", "pod": {"containers": [{"name": "api", "handler": {"path": "echo.py"}}]}},
    {"name": "hello", "kind": "RealtimeAPI", "pod": {"containers": [{"name": "api", "image": "registry.example/h:1"}]}},
]


def _deploy(stack_dir: Path, **config: str) -> Recording:
    (stack_dir / "echo.py").write_text("class Handler: ...\n")
    keys = {"cortex:cluster": json.dumps(CLUSTER), "cortex:apis": json.dumps(APIS), **config}
    return record(lambda: deploy(stack_dir), config=keys, preview=True)


def _images(rec: Recording, api: str) -> list[str]:
    deployment = rec.find("kubernetes:apps/v1:Deployment", f"{api}-deployment")
    return [c["image"] for c in deployment.inputs["spec"]["template"]["spec"]["containers"]]


def test_runtime_image_key_reaches_handler_containers(tmp_path: Path) -> None:
    rec = _deploy(tmp_path, **{"cortex:runtimeImage": IMAGE})
    assert _images(rec, "echo")[0] == IMAGE
    assert _images(rec, "hello")[0] == "registry.example/h:1"
    handler = rec.find("kubernetes:core/v1:ConfigMap", "echo-handler")
    assert handler.inputs["data"] == {"echo.py": "class Handler: ...\n"}  # read from the stack directory


def test_without_the_key_a_handler_api_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"apis\[0\].pod.containers\[0\].handler: 'echo.py' is not allowed \(a handler "
                                        r"runs in the serving runtime image, and no runtime image is given: .* the "
                                        r"stack config key cortex:runtimeImage"):
        _deploy(tmp_path)


def test_the_aws_region_must_be_the_clusters(tmp_path: Path) -> None:
    # The stack program checks it (the Cluster component reads no global config).
    region = CLUSTER["region"]
    with pytest.raises(SpecError, match=rf"Pulumi\.\w+\.yaml: aws:region: 'eu-west-3' is not allowed \(must be the "
                                        rf"cluster's region, '{region}'"):
        _deploy(tmp_path, **{"cortex:runtimeImage": IMAGE, "aws:region": "eu-west-3"})
    assert _deploy(tmp_path, **{"cortex:runtimeImage": IMAGE, "aws:region": region}).resources
