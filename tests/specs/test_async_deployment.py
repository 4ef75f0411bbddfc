"""The AsyncAPI rules that need the whole deployment: a runtime image, and no API named like its gateway."""

from __future__ import annotations

from cortex_iac.specs import load_apis
from cortex_iac.specs.deployment import RUNTIME_IMAGE_HINT, deployment_problems
from cortex_iac.specs.kinds import KINDS, QUEUE_WORKER_SIDECAR
from tests.specs.helpers import api

RUNTIME = "registry.example/cortex-serving:1"


def test_an_async_api_needs_the_runtime_image_its_gateway_and_worker_run() -> None:
    apis = load_apis([api("AsyncAPI")])
    assert deployment_problems(None, apis, runtime_image=None) == [
        "<data>: apis[0].kind: 'AsyncAPI' is not allowed (an AsyncAPI's gateway and queue worker run in the serving "
        f"runtime image, and no runtime image is given: {RUNTIME_IMAGE_HINT})"
    ]
    assert deployment_problems(None, apis, runtime_image=RUNTIME) == []
    assert deployment_problems(None, apis) == []  # API files alone: the runtime image is the stack's setting
    assert deployment_problems(None, apis, runtime_image="Not An Image") == [
        "runtime image: 'Not An Image' is not allowed (must be a container image reference such as "
        "registry.example.com/team/model:1.2 ([registry/]repository[:tag][@sha256:digest], repository in lower case, "
        "at most one tag))"
    ]


def test_no_api_may_take_an_async_apis_gateway_name() -> None:
    apis = load_apis([api("AsyncAPI", name="summarize"), api(name="summarize-gateway")], origin="cortex.yaml")
    assert deployment_problems(None, apis, runtime_image=RUNTIME) == [
        "cortex.yaml: apis[1].name: 'summarize-gateway' is not allowed (the AsyncAPI summarize (cortex.yaml: apis[0]) "
        "names its gateway so)"
    ]


def test_async_apis_deploy_and_their_pods_count_the_queue_worker() -> None:
    support = KINDS["AsyncAPI"]
    assert support.can("validate") and support.can("render") and support.can("deploy")
    assert support.sidecar == QUEUE_WORKER_SIDECAR
