"""``cortex:api:RuntimeImage``: the serving runtime image, built from this package and pushed to its
own ECR repository, for :class:`~cortex_iac.components.realtime_api.RealtimeApi`'s ``runtime_image``.

Opt-in, and not used by the ready stacks (they take an image reference, ``cortex:runtimeImage``):
``pulumi up`` with this component needs a Docker engine with buildx, and pushing needs registry
credentials. Without ``credentials`` it asks AWS for an ECR token (``aws.ecr.getAuthorizationToken``),
a data-source call that needs AWS credentials, so ``cortex plan`` refuses a program using it that
way (docs/design.md, "Serving runtime image").
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

import cortex_iac
from cortex_iac.errors import CortexError

TYPE = "cortex:api:RuntimeImage"
# The build context is the package directory: the Dockerfile copies errors.py and serving/ from it.
PACKAGE_DIR = Path(cortex_iac.__file__).resolve().parent
DOCKERFILE = PACKAGE_DIR / "serving" / "Dockerfile"
# Both architectures Karpenter may launch (node groups can be Graviton): one multi-platform image.
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")

_PLATFORMS = tuple(p.value for p in docker_build.Platform)
_REPOSITORY_NAME = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")


@dataclass(frozen=True)
class RegistryCredentials:
    """A user name and password for the repository's registry (for ECR: user ``AWS`` and a token
    from ``aws ecr get-login-password``, e.g. a CI secret), so the component makes no AWS call."""

    username: pulumi.Input[str]
    password: pulumi.Input[str]


class RuntimeImage(pulumi.ComponentResource):
    """The serving runtime image (``cortex_iac/serving/Dockerfile``) in a new ECR repository.

    Children: ``<name>-repository`` (``aws.ecr.Repository``: immutable tags, scan on push, deleted
    with its images when the component goes, ``tags``) and ``<name>-image``
    (``pulumi_docker_build.Image``: built from :data:`PACKAGE_DIR` for ``platforms``, pushed with
    the tag :func:`image_tag`, not built during previews).

    Args:
        name: component name.
        repository_name: the ECR repository's name (default: ``name``).
        tags: tags of the repository (default none).
        platforms: platforms of the image (default :data:`DEFAULT_PLATFORMS`; more than one needs a
            builder that can build for several, e.g. Docker's containerd image store or a
            ``docker-container`` builder with QEMU).
        credentials: the registry login (default none: an ECR token is requested from AWS when the
            program runs, which ``cortex plan`` refuses).
        opts: resource options.

    Outputs: ``repository_url``, ``image_ref`` (``<repository>:<tag>@<digest>``, what
    ``RealtimeApi(runtime_image=...)`` takes). Attribute ``tag``: the pushed tag.
    """

    repository_url: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    tag: str

    def __init__(
        self,
        name: str,
        *,
        repository_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        platforms: Sequence[str] = DEFAULT_PLATFORMS,
        credentials: RegistryCredentials | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        repository_name = name if repository_name is None else repository_name
        _check_args(name, repository_name, platforms)
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repository = aws.ecr.Repository(
            f"{name}-repository",
            name=repository_name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            # Only images built from this package's source live here; any can be rebuilt.
            force_delete=True,
            tags=dict(tags or {}),
            opts=child,
        )
        if credentials is None:
            # The token of the account's own registry, where the repository is. Asked eagerly (not
            # after the repository exists) so that even a preview shows the need for credentials.
            token = aws.ecr.get_authorization_token_output(opts=pulumi.InvokeOutputOptions(parent=self))
            credentials = RegistryCredentials(username=token.user_name, password=token.password)
        self.tag = image_tag(platforms)
        tag = self.tag
        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(location=str(PACKAGE_DIR)),
            dockerfile=docker_build.DockerfileArgs(location=str(DOCKERFILE)),
            platforms=[docker_build.Platform(p) for p in platforms],
            push=True,
            # A preview needs no Docker engine; `pulumi up` builds.
            build_on_preview=False,
            tags=[repository.repository_url.apply(lambda url: f"{url}:{tag}")],
            registries=[
                docker_build.RegistryArgs(
                    address=repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
                    username=credentials.username,
                    password=pulumi.Output.secret(credentials.password),
                )
            ],
            opts=child,
        )
        self.repository_url = repository.repository_url
        self.image_ref = image.ref
        self.register_outputs({"repository_url": self.repository_url, "image_ref": self.image_ref})


def image_tag(platforms: Sequence[str] = DEFAULT_PLATFORMS) -> str:
    """The tag of the image built now: ``src-`` and 16 hex digits of a sha256 over what the image
    provider compares to decide on a rebuild (every file of the build context with its relative path,
    mode and content; where the context and Dockerfile are) and the ``platforms``.

    The repository's tags are immutable and the provider pushes whenever its own hash of the context
    changes, so the tag must change whenever that hash can: this one covers the same inputs."""
    digest = hashlib.sha256()
    for value in (str(PACKAGE_DIR), str(DOCKERFILE), *platforms):
        digest.update(value.encode() + b"\0")
    for directory, subdirectories, files in os.walk(PACKAGE_DIR):
        subdirectories.sort()
        for file_name in sorted(files):
            path = Path(directory, file_name)
            if not path.is_file():  # sockets, dangling links: the provider skips them too
                continue
            digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0")
            digest.update(oct(path.lstat().st_mode).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"src-{digest.hexdigest()[:16]}"


def _check_args(name: str, repository_name: str, platforms: Sequence[str]) -> None:
    if not (2 <= len(repository_name) <= 256 and _REPOSITORY_NAME.fullmatch(repository_name)):
        raise CortexError(
            f"RuntimeImage {name!r}: repository_name {repository_name!r} is not allowed (an ECR repository "
            "name: 2 to 256 lowercase letters, digits and '.', '_', '-' separators, '/' between parts)"
        )
    if isinstance(platforms, str) or not platforms or any(p not in _PLATFORMS for p in platforms):
        raise CortexError(
            f"RuntimeImage {name!r}: platforms {platforms!r} is not allowed (a non-empty list of platforms of "
            "pulumi_docker_build.Platform, such as linux/amd64 and linux/arm64)"
        )
