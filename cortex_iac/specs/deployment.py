"""Checks of a whole deployment: a cluster and every API of it, across files.

Each file is valid on its own when its models load; these are the rules that need the others:
unique API names (checked by the loader, even among invalid entries) and endpoints, node groups that
exist and fit the pods, TrafficSplitter targets that exist and are RealtimeAPIs, the runtime image
that handler containers and AsyncAPIs run, no API named like an AsyncAPI's gateway, and what this version can do with each kind
(`cortex_iac.specs.kinds`). `cortex validate`, `cortex render`, `cortex plan` and the stack
program all run them, so a deployment `validate` accepts is one the program deploys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cortex_iac.errors import SpecError
from cortex_iac.specs.api import ApiSpec, AsyncApiSpec, TrafficSplitterSpec, WorkloadSpec, _ApiBase
from cortex_iac.specs.cluster import NodeGroupSpec
from cortex_iac.specs.image import IMAGE_REQUIREMENT, is_image_reference
from cortex_iac.specs.kinds import Action, unsupported
from cortex_iac.specs.messages import show
from cortex_iac.specs.placement import placement
from cortex_iac.specs.problems import Path


class UnknownRuntimeImage:
    """Stands for "whether a runtime image will be given is not known here" (plain `cortex validate`
    of API files, whose runtime image is a stack or program setting)."""


UNKNOWN_RUNTIME_IMAGE = UnknownRuntimeImage()

RUNTIME_IMAGE_HINT = (
    "build and push it (cortex_iac/serving/README.md, or the RuntimeImage component) and give its reference "
    "as the stack config key cortex:runtimeImage, RealtimeApi's runtime_image, or --runtime-image"
)


def problem_line(spec: _ApiBase, path: Path, value: Any, requirement: str) -> str:
    """One message line about ``value`` at ``path`` of ``spec``, named as the loader names its problems."""
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return f"{spec.where}{field}: {show(value)} is not allowed ({requirement})"


def deployment_problems(
    node_groups: Sequence[NodeGroupSpec] | None,
    apis: Sequence[ApiSpec],
    *,
    action: Action = "deploy",
    runtime_image: str | None | UnknownRuntimeImage = UNKNOWN_RUNTIME_IMAGE,
) -> list[str]:
    """Every problem of deploying ``apis`` together on a cluster of ``node_groups`` (None: the
    cluster is not known, so node groups are not checked), one line each.

    ``action`` is what is asked of the APIs (``validate`` for a check of the files alone, which
    skips the kind support); ``runtime_image`` is the serving runtime image that containers giving
    a ``handler`` run (None: none given, which such containers refuse; default: not known here).
    """
    lines: list[str] = []
    by_name = {api.name: api for api in apis}
    endpoints: dict[str, ApiSpec] = {}
    for api in apis:
        if action != "validate":
            problem = unsupported(api.kind, action)
            if problem is not None:
                lines.append(problem_line(api, ("kind",), api.kind, problem))
        endpoint = api.networking.endpoint
        other = endpoints.setdefault(endpoint, api)
        if other is not api:
            lines.append(problem_line(api, ("networking", "endpoint"), endpoint,
                               f"endpoints must be unique in a cluster; {other.where} ({other.name}) has it"))
        if isinstance(api, TrafficSplitterSpec):
            for index, target in enumerate(api.apis):
                found = by_name.get(target.name)
                if found is None:
                    lines.append(problem_line(api, ("apis", index, "name"), target.name,
                                       "must be a RealtimeAPI of the same deployment (no API has this name)"))
                elif found.kind != "RealtimeAPI":
                    lines.append(problem_line(api, ("apis", index, "name"), target.name,
                                       f"a TrafficSplitter routes to RealtimeAPIs; {target.name} is a {found.kind}"))
        if isinstance(api, AsyncApiSpec):
            # Its gateway's objects are named <name>-gateway in the shared namespace.
            gateway = f"{api.name}-gateway"
            if gateway in by_name:
                lines.append(problem_line(by_name[gateway], ("name",), gateway,
                                          f"the AsyncAPI {api.name} ({api.where}) names its gateway so"))
            if runtime_image is None and action != "validate":
                lines.append(problem_line(api, ("kind",), api.kind, "an AsyncAPI's gateway and queue worker run in "
                                          f"the serving runtime image, and no runtime image is given: {RUNTIME_IMAGE_HINT}"))
            elif isinstance(runtime_image, str) and not is_image_reference(runtime_image):
                lines.append(f"runtime image: {show(runtime_image)} is not allowed ({IMAGE_REQUIREMENT})")
        if isinstance(api, WorkloadSpec):
            found_placement = placement(api, node_groups)
            lines += [problem_line(api, path, value, requirement) for path, value, requirement in found_placement.problems]
            lines += _runtime_image_problems(api, runtime_image)
    return list(dict.fromkeys(lines))


# Kinds whose own processes (the job gateway, the batch worker: cortex_iac.jobs) run in the serving
# runtime image, whatever their containers are.
RUNTIME_IMAGE_KINDS = ("BatchAPI", "TaskAPI")


def _runtime_image_problems(api: WorkloadSpec, runtime_image: str | None | UnknownRuntimeImage) -> list[str]:
    handlers = [index for index, c in enumerate(api.pod.containers) if c.handler is not None]
    needed = bool(handlers) or api.kind in RUNTIME_IMAGE_KINDS
    if not needed or isinstance(runtime_image, UnknownRuntimeImage):
        return []
    if runtime_image is None and not handlers:
        runs = "job gateway and worker run" if api.kind == "BatchAPI" else "job gateway runs"
        need = f"a {api.kind}'s {runs} in the serving runtime image, and no runtime image is given: {RUNTIME_IMAGE_HINT}"
        return [problem_line(api, ("kind",), api.kind, need)]
    path: Path = ("pod", "containers", handlers[0], "handler") if handlers else ("kind",)
    if runtime_image is None:
        need = f"a handler runs in the serving runtime image, and no runtime image is given: {RUNTIME_IMAGE_HINT}"
        return [problem_line(api, path, api.pod.containers[handlers[0]].handler.path, need)]  # type: ignore[union-attr]
    if not is_image_reference(runtime_image):
        return [f"runtime image: {show(runtime_image)} is not allowed ({IMAGE_REQUIREMENT})"]
    return []


def check_deployment(
    node_groups: Sequence[NodeGroupSpec] | None,
    apis: Sequence[ApiSpec],
    *,
    action: Action = "deploy",
    runtime_image: str | None | UnknownRuntimeImage = UNKNOWN_RUNTIME_IMAGE,
) -> None:
    """Raise `SpecError` with every line of :func:`deployment_problems`; nothing when there is none."""
    lines = deployment_problems(node_groups, apis, action=action, runtime_image=runtime_image)
    if lines:
        raise SpecError(lines)
