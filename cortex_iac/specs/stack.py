"""The specs of a stack: ``cortex:cluster``, ``cortex:apis``, ``cortex:runtimeImage`` and
``cortex:observability`` (with its secret ``cortex:alertReceiverSecret``) of a Pulumi stack config, read the same way by the stack program (from Pulumi's config) and by
``cortex validate stacks/Pulumi.<stack>.yaml`` (from the file), so both check the same things.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cortex_iac.errors import SpecError
from cortex_iac.specs.api import ApiSpec
from cortex_iac.specs.cluster import ClusterSpec
from cortex_iac.specs.deployment import UNKNOWN_RUNTIME_IMAGE, UnknownRuntimeImage, check_deployment
from cortex_iac.specs.loader import _read_yaml, _validate, load_api_files, load_apis, load_cluster
from cortex_iac.specs.messages import show
from cortex_iac.specs.observability import ALERT_RECEIVER_SECRET_KEY, MAX_GRAFANA_SOURCE_CIDRS, ObservabilitySpec

# What a stack file's ``secure:`` value (or a secret read by the program) stands for: given, its
# value unknown here.
GIVEN_SECRET = "<secret>"


@dataclass(frozen=True)
class StackSpecs:
    """A stack's validated cluster and APIs, and the runtime image handler containers run."""

    cluster: ClusterSpec
    apis: list[ApiSpec]
    runtime_image: str | None
    observability: ObservabilitySpec = field(default_factory=ObservabilitySpec)


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
    observability = ObservabilitySpec()
    try:
        observability = _observability(values, cluster, stack_file)
    except SpecError as error:
        lines += error.problems
    if lines:
        raise SpecError(lines)
    return StackSpecs(cluster=cluster, apis=apis, runtime_image=runtime_image if isinstance(runtime_image, str) else None,
                      observability=observability)


def _observability(values: Mapping[str, Any], cluster: ClusterSpec, stack_file: str) -> ObservabilitySpec:
    """``cortex:observability`` validated, and checked against the cluster and the receiver secret.

    The secret must be given (as ``secure:``, :data:`GIVEN_SECRET` here) exactly when a receiver is
    named, and never in clear: a plain value in the stack file would be in every PR's diff."""
    origin = f"{stack_file}: cortex:observability"
    raw = values.get("observability")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: got a {type(raw).__name__}; allowed: a mapping with grafana and alerting")
    spec: ObservabilitySpec = _validate(ObservabilitySpec, raw, origin=origin, root="")
    lines: list[str] = []
    secret = values.get(ALERT_RECEIVER_SECRET_KEY)
    key = f"{stack_file}: cortex:{ALERT_RECEIVER_SECRET_KEY}"
    receiver = spec.alerting.receiver
    if secret is not None and secret != GIVEN_SECRET:
        lines.append(f"{key}: given in clear; it must be a secret: pulumi config set --secret cortex:{ALERT_RECEIVER_SECRET_KEY}")
    elif receiver != "none" and secret is None:
        lines.append(f"{key}: missing; alerting.receiver {receiver!r} needs it (the {_SECRET_WHAT[receiver]}): "
                     f"pulumi config set --secret cortex:{ALERT_RECEIVER_SECRET_KEY}")
    elif receiver == "none" and secret is not None:
        lines.append(f"{key}: given but alerting.receiver is 'none'; allowed: a receiver of slack, pagerduty or "
                     "webhook, or no secret")
    if spec.alerting.slack_channel is not None and receiver != "slack":
        lines.append(f"{origin}: alerting.slack_channel: {spec.alerting.slack_channel!r} is not allowed with "
                     f"receiver {receiver!r} (only with receiver: slack)")
    grafana = spec.grafana
    if grafana.expose == "load-balancer":
        cidrs = cluster.operator_load_balancer_cidr_white_list
        if not grafana.enabled:
            lines.append(f"{origin}: grafana.expose: 'load-balancer' is not allowed with grafana.enabled: false")
        elif len(cidrs) > MAX_GRAFANA_SOURCE_CIDRS:
            lines.append(
                f"{origin}: grafana.expose: 'load-balancer' needs the cluster's operator_load_balancer_cidr_white_list "
                f"to have at most {MAX_GRAFANA_SOURCE_CIDRS} CIDRs (an ALB rule's source-IP condition takes at most "
                f"{MAX_GRAFANA_SOURCE_CIDRS}); it has {len(cidrs)}"
            )
    if lines:
        raise SpecError(lines)
    return spec


_SECRET_WHAT = {"slack": "Slack webhook URL", "pagerduty": "PagerDuty routing key", "webhook": "webhook URL"}


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
    secret = values.get(ALERT_RECEIVER_SECRET_KEY)
    if isinstance(secret, dict) and set(secret) == {"secure"}:
        values[ALERT_RECEIVER_SECRET_KEY] = GIVEN_SECRET
    if "aws:region" in config:
        values["aws_region"] = config["aws:region"]
    return specs_from_values(values, Path(path).parent, Path(path).name)
