"""The ready-made program behind ``stacks/``: stack config in, cluster and APIs out.

Stack config keys (namespace ``cortex``):
- ``cortex:cluster``: a mapping in Cortex's cluster.yaml format, or the path of such a file.
- ``cortex:apis``: a list of paths of cortex.yaml files, or an inline list of API specs.
- ``cortex:runtimeImage`` (optional): the serving runtime image reference that containers giving a
  ``handler`` run (built and pushed as cortex_iac/serving/README.md says); without it such APIs are
  refused.
Relative paths are taken from ``base_dir`` (the directory of the stack config files); a handler's
``path`` from the directory of the file declaring it (``base_dir`` for inline specs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi

from cortex_iac.errors import SpecError
from cortex_iac.specs import ApiSpec, ClusterSpec, load_api_files, load_apis, load_cluster


def _raw(config: pulumi.Config, key: str) -> Any:
    value = config.get(key)
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # a plain string: a path


def specs_from_config(config: pulumi.Config, base_dir: Path, stack_file: str) -> tuple[ClusterSpec, list[ApiSpec]]:
    """Read and validate ``cortex:cluster`` and ``cortex:apis``; ``SpecError`` names the key on failure."""
    cluster_raw = _raw(config, "cluster")
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

    apis_raw = _raw(config, "apis") or []
    if not isinstance(apis_raw, list):
        raise SpecError(f"{stack_file}: cortex:apis: got a {type(apis_raw).__name__}; allowed: a list of file paths or of API specs")
    if all(isinstance(a, str) for a in apis_raw):
        apis = load_api_files([base_dir / a for a in apis_raw])
    elif all(isinstance(a, dict) for a in apis_raw):
        apis = load_apis(apis_raw, origin=f"{stack_file}: cortex:apis", base_dir=base_dir)
    else:
        raise SpecError(f"{stack_file}: cortex:apis: mixes paths and inline specs; allowed: all paths or all mappings")
    return cluster, apis


def deploy(base_dir: Path) -> None:
    """Declare the cluster and every API of the current stack's config, and export their outputs."""
    from cortex_iac.components.cluster import Cluster
    from cortex_iac.components.realtime_api import RealtimeApi
    from cortex_iac.specs import RealtimeApiSpec

    stack_file = f"Pulumi.{pulumi.get_stack()}.yaml"
    config = pulumi.Config("cortex")
    cluster_spec, apis = specs_from_config(config, base_dir, stack_file)
    runtime_image = config.get("runtimeImage")
    unsupported = sorted({a.kind for a in apis if not isinstance(a, RealtimeApiSpec)})
    if unsupported:
        raise SpecError(
            f"{stack_file}: cortex:apis: kind {', '.join(unsupported)} cannot be deployed by this version yet; "
            "supported: RealtimeAPI"
        )
    cluster = Cluster(cluster_spec.cluster_name, cluster_spec)
    urls = {}
    for api in apis:
        deployed = RealtimeApi(api.name, api, cluster, runtime_image=runtime_image)
        urls[api.name] = deployed.url
    pulumi.export("cluster_name", cluster_spec.cluster_name)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("api_urls", urls)
