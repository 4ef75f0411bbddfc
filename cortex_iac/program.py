"""The ready-made program behind ``stacks/``: stack config in, cluster and APIs out.

Stack config keys (namespace ``cortex``):
- ``cortex:cluster``: a mapping in Cortex's cluster.yaml format, or the path of such a file.
- ``cortex:apis``: a list of paths of cortex.yaml files, or an inline list of API specs.
- ``cortex:observability`` (optional): Grafana and alerting (docs/observability.md), with the
  receiver's URL or key in the secret ``cortex:alertReceiverSecret``.
- ``cortex:runtimeImage`` (optional): the serving runtime image reference that containers giving a
  ``handler`` run (built and pushed as cortex_iac/serving/README.md says); without it such APIs are
  refused.
The whole deployment is checked as ``cortex validate`` checks it (``cortex_iac.specs.deployment``),
including the AWS provider's ``aws:region``, which must be the cluster's. Relative paths are taken from ``base_dir`` (the directory of the stack config files); a handler's
``path`` from the directory of the file declaring it (``base_dir`` for inline specs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi

from cortex_iac.specs.observability import ALERT_RECEIVER_SECRET_KEY
from cortex_iac.specs.stack import GIVEN_SECRET, StackSpecs, specs_from_values


def _raw(config: pulumi.Config, key: str) -> Any:
    value = config.get(key)
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # a plain string: a path or an image reference


def specs_from_config(config: pulumi.Config, base_dir: Path, stack_file: str) -> StackSpecs:
    """Read and validate ``cortex:cluster``, ``cortex:apis`` and ``cortex:runtimeImage`` as a
    deployment (:func:`cortex_iac.specs.stack.specs_from_values`, which ``cortex validate`` runs on
    the stack file too); ``SpecError`` names the file and key on failure."""
    values = {key: _raw(config, key) for key in ("cluster", "apis", "observability")}
    values["runtimeImage"] = config.get("runtimeImage")
    if config.get_secret(ALERT_RECEIVER_SECRET_KEY) is not None:
        values[ALERT_RECEIVER_SECRET_KEY] = GIVEN_SECRET  # its value stays a secret output (see deploy)
    values["aws_region"] = pulumi.Config("aws").get("region")
    return specs_from_values(values, base_dir, stack_file)


def deploy(base_dir: Path) -> None:
    """Declare the cluster and every API of the current stack's config, and export their outputs."""
    from cortex_iac.components.async_api import AsyncApi
    from cortex_iac.components.batch_api import BatchApi
    from cortex_iac.components.cluster import Cluster
    from cortex_iac.components.observability import ApiRules
    from cortex_iac.components.realtime_api import RealtimeApi
    from cortex_iac.components.task_api import TaskApi
    from cortex_iac.components.traffic_splitter import TrafficSplitter
    from cortex_iac.specs import AsyncApiSpec, BatchApiSpec, RealtimeApiSpec, TaskApiSpec, TrafficSplitterSpec

    stack_file = f"Pulumi.{pulumi.get_stack()}.yaml"
    stack = specs_from_config(pulumi.Config("cortex"), base_dir, stack_file)
    for line in stack.cluster.warnings:
        pulumi.log.warn(line)
    config = pulumi.Config("cortex")
    receiver = config.get_secret(ALERT_RECEIVER_SECRET_KEY) if stack.observability.alerting.receiver != "none" else None
    cluster = Cluster(stack.cluster.cluster_name, stack.cluster, observability=stack.observability,
                      alert_receiver_secret=receiver)
    urls = {}
    deployed: dict[str, RealtimeApi] = {}
    for api in stack.apis:
        if isinstance(api, RealtimeApiSpec):
            deployed[api.name] = RealtimeApi(api.name, api, cluster, runtime_image=stack.runtime_image)
            urls[api.name] = deployed[api.name].url
        elif isinstance(api, AsyncApiSpec):
            urls[api.name] = AsyncApi(api.name, api, cluster, runtime_image=stack.runtime_image).url
        elif isinstance(api, BatchApiSpec):
            urls[api.name] = BatchApi(api.name, api, cluster, runtime_image=stack.runtime_image).url
        elif isinstance(api, TaskApiSpec):
            urls[api.name] = TaskApi(api.name, api, cluster, runtime_image=stack.runtime_image).url
    if cluster.prometheus_url is not None:
        ApiRules(f"{stack.cluster.cluster_name}-apis", [a for a in stack.apis if isinstance(a, RealtimeApiSpec)],
                 cluster.handle)
    # Splitters after the APIs they route to (Cortex deployed them last too); they wait for them.
    for api in stack.apis:
        if isinstance(api, TrafficSplitterSpec):
            urls[api.name] = TrafficSplitter(api.name, api, cluster, deployed).url
        else:
            # The kinds check_deployment lets through for "deploy" (cortex_iac.specs.kinds).
            assert isinstance(api, (RealtimeApiSpec, AsyncApiSpec, BatchApiSpec, TaskApiSpec))
    pulumi.export("cluster_name", stack.cluster.cluster_name)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("api_urls", urls)
