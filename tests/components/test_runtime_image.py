"""``cortex:api:RuntimeImage`` under the recording engine: children, inputs, the tag, and that the ready
stacks do not use it (it needs Docker and registry credentials when deployed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pulumi
import pytest

from cortex_iac.components import runtime_image
from cortex_iac.components.runtime_image import (
    TYPE,
    RegistryCredentials,
    RuntimeImage,
    image_tag,
)
from cortex_iac.errors import CortexError, PlanError
from cortex_iac.plan.engine import record, run_program
from tests.components.conftest import FAKE_DIGEST

REPO = Path(__file__).resolve().parents[2]
URL = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cortex-serving"


def _program(**kwargs: object):
    def program() -> None:
        image = RuntimeImage("serving", **{"repository_name": "cortex-serving",
                                           "credentials": RegistryCredentials("AWS", "token"), **kwargs})
        pulumi.export("image_ref", image.image_ref)
        pulumi.export("repository_url", image.repository_url)
        pulumi.export("tag", image.tag)

    return program


def test_children_and_inputs() -> None:
    rec = record(_program(tags={"team": "ml"}))
    component = rec.find(TYPE, "serving")
    assert sorted((r.type, r.name) for r in rec.children(component.urn)) == [
        ("aws:ecr/repository:Repository", "serving-repository"),
        ("docker-build:index:Image", "serving-image"),
    ]
    repository = rec.find("aws:ecr/repository:Repository", "serving-repository")
    assert repository.inputs == {
        "name": "cortex-serving", "imageTagMutability": "IMMUTABLE", "imageScanningConfiguration": {"scanOnPush": True},
        "forceDelete": True, "tags": {"team": "ml"}}
    image = rec.find("docker-build:index:Image", "serving-image")
    tag = image_tag()
    assert image.inputs == {
        "context": {"location": str(REPO / "cortex_iac")},
        "dockerfile": {"location": str(REPO / "cortex_iac" / "serving" / "Dockerfile")},
        "platforms": ["linux/amd64", "linux/arm64"],
        "push": True,
        "buildOnPreview": False,
        "network": "default",
        "tags": [f"{URL}:{tag}"],
        "registries": [{"address": URL.split("/")[0], "username": "AWS", "password": "$secret"}],
    }
    assert repository.urn in image.dependencies
    assert rec.outputs == {"image_ref": f"{URL}:{tag}@{FAKE_DIGEST}", "repository_url": URL, "tag": tag}


def test_preview_needs_no_docker_nor_aws() -> None:
    rec = record(_program(), preview=True)
    assert rec.outputs["image_ref"] == "$unknown"
    assert rec.find("docker-build:index:Image", "serving-image").inputs["buildOnPreview"] is False


@pytest.mark.parametrize("preview", [True, False])
def test_without_credentials_it_asks_aws_for_a_token_which_a_plan_refuses(preview: bool) -> None:
    with pytest.raises(PlanError, match=r"'aws:ecr/getAuthorizationToken:getAuthorizationToken', which needs cloud "
                                        r"credentials"):
        record(_program(credentials=None), preview=preview)


def test_the_tag_follows_every_input_of_a_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The repository's tags are immutable: whatever makes the image provider rebuild must change the tag.
    context = tmp_path / "cortex_iac"
    shutil.copytree(REPO / "cortex_iac", context, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runtime_image, "PACKAGE_DIR", context)
    monkeypatch.setattr(runtime_image, "DOCKERFILE", context / "serving" / "Dockerfile")
    first = image_tag()
    assert first.startswith("src-") and len(first) == 20 and image_tag() == first
    seen = {first}

    def changed() -> str:
        tag = image_tag()
        assert tag not in seen
        seen.add(tag)
        return tag

    (context / "components" / "_kube.py").write_text("# any file of the context\n")
    changed()
    (context / "serving" / "app.py").chmod(0o755)
    changed()
    (context / "serving" / "app.py").rename(context / "serving" / "app2.py")
    changed()
    (context / "serving" / "Dockerfile").write_text((REPO / "cortex_iac" / "serving" / "Dockerfile").read_text() + "\n")
    changed()
    assert image_tag(["linux/amd64"]) not in seen
    monkeypatch.setattr(runtime_image, "PACKAGE_DIR", tmp_path / "moved")
    shutil.copytree(context, tmp_path / "moved")
    changed()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"repository_name": "Cortex"}, r"RuntimeImage 'serving': repository_name 'Cortex' is not allowed \(an ECR"),
    ({"repository_name": "a//b"}, r"repository_name 'a//b' is not allowed"),
    ({"platforms": []}, r"RuntimeImage 'serving': platforms \[\] is not allowed \(a non-empty list"),
    ({"platforms": "linux/amd64"}, r"platforms 'linux/amd64' is not allowed"),
    ({"platforms": ["linux/sparc"]}, r"platforms \['linux/sparc'\] is not allowed"),
])
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CortexError, match=message):
        record(_program(**kwargs))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_ready_stacks_do_not_build_images(stack: str) -> None:
    rec = run_program(REPO, stack, preview=True)
    assert rec.of_type(TYPE) == [] and rec.of_type("docker-build:index:Image") == []
    assert rec.of_type("cortex:api:RealtimeApi")
