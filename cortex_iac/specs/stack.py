"""The specs of a stack: ``cortex:cluster``, ``cortex:apis`` and ``cortex:runtimeImage`` of a Pulumi
stack config, read the same way by the stack program (from Pulumi's config) and by
``cortex validate stacks/Pulumi.<stack>.yaml`` (from the file), so both check the same things.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cortex_iac.errors import SpecError
from cortex_iac.specs.api import ApiSpec
from cortex_iac.specs.cluster import ClusterSpec
from cortex_iac.specs.deployment import UNKNOWN_RUNTIME_IMAGE, UnknownRuntimeImage, check_deployment
from cortex_iac.specs.loader import _read_yaml, load_api_files, load_apis, load_cluster
from cortex_iac.specs.messages import show


@dataclass(frozen=True)
class StackSpecs:
    """A stack's validated cluster and APIs, and the runtime image handler containers run."""

    cluster: ClusterSpec
    apis: list[ApiSpec]
    runtime_image: str | None


def specs_from_values(values: Mapping[str, Any], base_dir: Path, stack_file: str) -> StackSpecs:
    """Validate a stack's config values (keys without the ``cortex:`` namespace, structured values
    already decoded) as a deployment; relative paths are taken from ``base_dir``. ``aws_region``,
    when given, is the AWS provider's region, which must be the cluster's. Raises `SpecError`
    with every problem, naming the stack file and key."""
    cluster_raw = values.get("cluster")
    if cluster_raw is None:
        raise SpecError(f"{stack_file}: cortex:cluster: missing (a cluster.yaml mapping or the path of one)")
    if isinstance(cluster_raw, str):
        cluster = load_cluster(base_dir / cluster_raw)
    elif isinstance(cluster_raw, dict):
        cluster = load_cluster(cluster_raw, origin=f"{stack_file}: cortex:cluster")
    else:
        raise SpecError(
            f"{stack_file}: cortex:cluster: got a {type(cluster_raw).__name__}; allowed: a mapping or a file path"
        )
    apis_raw = values.get("apis") or []
    if not isinstance(apis_raw, list):
        raise SpecError(
            f"{stack_file}: cortex:apis: got a {type(apis_raw).__name__}; allowed: a list of file paths or of API specs"
        )
    if all(isinstance(a, str) for a in apis_raw):
        apis = load_api_files([base_dir / a for a in apis_raw])
    elif all(isinstance(a, dict) for a in apis_raw):
        apis = load_apis(apis_raw, origin=f"{stack_file}: cortex:apis", base_dir=base_dir)
    else:
        raise SpecError(f"{stack_file}: cortex:apis: mixes paths and inline specs; allowed: all paths or all mappings")
    runtime_image = values.get("runtimeImage")
    lines: list[str] = []
    if runtime_image is not None and not isinstance(runtime_image, (str, UnknownRuntimeImage)):
        lines.append(f"{stack_file}: cortex:runtimeImage: {show(runtime_image)} is not allowed (must be an image reference)")
        runtime_image = None
    aws_region = values.get("aws_region")
    if aws_region is not None and aws_region != cluster.region:
        lines.append(f"{stack_file}: aws:region: {show(aws_region)} is not allowed (must be the cluster's region, "
                     f"{cluster.region!r}: the AWS provider creates everything there)")
    try:
        check_deployment(cluster.node_groups, apis, action="deploy", runtime_image=runtime_image)
    except SpecError as error:
        lines += error.problems
    if lines:
        raise SpecError(lines)
    return StackSpecs(cluster=cluster, apis=apis, runtime_image=runtime_image if isinstance(runtime_image, str) else None)


def is_stack_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like a Pulumi stack config file (``Pulumi.<stack>.yaml``)."""
    name = Path(path).name
    return name.startswith("Pulumi.") and name.endswith((".yaml", ".yml")) and name.count(".") >= 2


def load_stack_file(path: str | os.PathLike[str]) -> StackSpecs:
    """Read ``Pulumi.<stack>.yaml`` as the stack program reads its config, and validate it.

    A ``secure:`` runtime image counts as given (its value is not known here)."""
    origin = os.fspath(path)
    data = _read_yaml(Path(path), origin, "a Pulumi stack config with a config: mapping")
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise SpecError(f"{origin}: config: {show(config)} is not allowed (must be a mapping with cortex:cluster, ...)")
    values: dict[str, Any] = {key.split(":", 1)[1]: value for key, value in config.items()
                              if isinstance(key, str) and key.startswith("cortex:")}
    if isinstance(values.get("runtimeImage"), dict) and "secure" in values["runtimeImage"]:
        values["runtimeImage"] = UNKNOWN_RUNTIME_IMAGE  # encrypted: given, its value unknown here
    if "aws:region" in config:
        values["aws_region"] = config["aws:region"]
    return specs_from_values(values, Path(path).parent, Path(path).name)
