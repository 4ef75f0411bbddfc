"""The cluster add-ons as resources: Helm releases, their IAM roles, Karpenter's interruption queue.

Children of the :class:`~cortex_iac.components.cluster.Cluster` (no component of their own); the
values and policies come from :mod:`cortex_iac.render.addons`. Controllers that call AWS get a role
through EKS Pod Identity: a role trusting ``pods.eks.amazonaws.com`` plus an
``aws.eks.PodIdentityAssociation`` naming the chart's service account. Unlike IRSA this needs no
service-account annotation (so the Helm values hold no ARN) and no OIDC provider in the trust
policy, which admits the one service account by the session tags EKS sets.

Every chart is a ``helm.v3.Release`` (Helm runs in the provider at deploy time; a ``Chart`` would
template at preview, which needs the cluster).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from cortex_iac.components._kube import object_meta
from cortex_iac.render import addons as render
from cortex_iac.render.addons import AddonsArgs as AddonsArgs  # re-exported: programs import it from here
from cortex_iac.render.iam import pod_identity_trust_policy, to_json
from cortex_iac.render.observability import addons as obs
from cortex_iac.render.routing import KEDA_NAMESPACE
from cortex_iac.specs.observability import ObservabilitySpec
from cortex_iac.versions import (
    AWS_FOR_FLUENT_BIT_CHART,
    AWS_LOAD_BALANCER_CONTROLLER_CHART,
    DCGM_EXPORTER_CHART,
    GRAFANA_CHART,
    KARPENTER_CHART,
    KARPENTER_CRD_CHART,
    KEDA_CHART,
    KEDA_HTTP_ADD_ON_CHART,
    METRICS_SERVER_CHART,
    NEURON_HELM_CHART,
    NVIDIA_DEVICE_PLUGIN_CHART,
    PROMETHEUS_CHART,
    HelmChart,
)


@dataclass(frozen=True)
class AddonContext:
    """What every add-on needs from the Cluster.

    ``name`` prefixes child names; ``eks`` is the EKS cluster resource the AWS-side children wait
    for; ``ready`` are what releases wait for (the system node group, the Pod Identity agent).
    """

    name: str
    parent: pulumi.Resource
    cluster_name: str
    region: str
    tags: Mapping[str, str]
    k8s_provider: k8s.Provider
    eks: pulumi.Resource
    ready: Sequence[pulumi.Resource]

    def opts(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options of an AWS child: parent, and waiting for ``depends_on``."""
        return pulumi.ResourceOptions(parent=self.parent, depends_on=list(depends_on))


def release(
    ctx: AddonContext,
    key: str,
    chart: HelmChart,
    namespace: pulumi.Input[str],
    release_name: str,
    values: pulumi.Input[Mapping[str, object]],
    *,
    depends_on: Sequence[pulumi.Resource] = (),
    skip_crds: bool = False,
) -> k8s.helm.v3.Release:
    """A Helm release ``<name>-<key>`` of a pinned chart, through the cluster's provider."""
    return k8s.helm.v3.Release(
        f"{ctx.name}-{key}",
        name=release_name,
        chart=chart.chart,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository) if chart.repository else None,
        namespace=namespace,
        values=values,
        skip_crds=skip_crds,
        opts=pulumi.ResourceOptions(
            parent=ctx.parent, provider=ctx.k8s_provider, depends_on=[*ctx.ready, *depends_on]
        ),
    )


def pod_identity_role(
    ctx: AddonContext,
    key: str,
    namespace: str,
    service_account: str,
    policies: Mapping[str, pulumi.Input[str]],
) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
    """A role for one service account through EKS Pod Identity, with customer-managed policies.

    Creates ``<name>-<key>-role``, one ``<name>-<key>-<policy>`` policy and attachment per entry of
    ``policies`` (policy JSON by short name) and the ``<name>-<key>`` association. Returns the role
    and what a release must wait for (attachments and association), so pods start with their rights.
    """
    prefix = f"{ctx.name}-{key}"
    role = aws.iam.Role(
        f"{prefix}-role",
        assume_role_policy=to_json(pod_identity_trust_policy(ctx.cluster_name, namespace, service_account)),
        description=f"{key} of EKS cluster {ctx.cluster_name} ({namespace}/{service_account}, EKS Pod Identity)",
        tags=dict(ctx.tags),
        opts=ctx.opts(),
    )
    waits: list[pulumi.Resource] = []
    for policy_name, document in policies.items():
        policy = aws.iam.Policy(
            f"{prefix}-{policy_name}",
            policy=document,
            description=f"{key} {policy_name} of EKS cluster {ctx.cluster_name}",
            tags=dict(ctx.tags),
            opts=ctx.opts(),
        )
        waits.append(
            aws.iam.RolePolicyAttachment(f"{prefix}-{policy_name}", role=role.name, policy_arn=policy.arn, opts=ctx.opts())
        )
    waits.append(
        aws.eks.PodIdentityAssociation(
            prefix,
            cluster_name=ctx.cluster_name,
            namespace=namespace,
            service_account=service_account,
            role_arn=role.arn,
            tags=dict(ctx.tags),
            opts=ctx.opts(ctx.eks),
        )
    )
    return role, waits


def karpenter(
    ctx: AddonContext, node_role: aws.iam.Role, node_role_policies: Sequence[pulumi.Resource]
) -> tuple[k8s.helm.v3.Release, k8s.helm.v3.Release]:
    """Karpenter: interruption queue and rules, controller role, CRD and controller releases.

    The controller starts once ``node_role`` has its ``node_role_policies`` (nodes it launches
    need them). Returns the CRD and controller releases; node groups must wait for both.
    """
    queue = aws.sqs.Queue(
        f"{ctx.name}-karpenter-interruption",
        name=render.karpenter_interruption_queue_name(ctx.cluster_name),
        message_retention_seconds=render.KARPENTER_QUEUE_RETENTION_SECONDS,
        sqs_managed_sse_enabled=True,
        tags=dict(ctx.tags),
        opts=ctx.opts(),
    )
    aws.sqs.QueuePolicy(
        f"{ctx.name}-karpenter-interruption",
        queue_url=queue.url,
        policy=queue.arn.apply(lambda arn: to_json(render.karpenter_interruption_queue_policy(arn))),
        opts=ctx.opts(),
    )
    for event, pattern in render.KARPENTER_INTERRUPTION_EVENTS.items():
        rule = aws.cloudwatch.EventRule(
            f"{ctx.name}-karpenter-{event}",
            description=f"{pattern['detail-type'][0]} events for Karpenter of EKS cluster {ctx.cluster_name}",
            event_pattern=json.dumps(pattern),
            tags=dict(ctx.tags),
            opts=ctx.opts(),
        )
        aws.cloudwatch.EventTarget(
            f"{ctx.name}-karpenter-{event}",
            rule=rule.name,
            arn=queue.arn,
            target_id="KarpenterInterruptionQueueTarget",
            opts=ctx.opts(),
        )
    documents = pulumi.Output.all(node_role.arn, queue.arn).apply(
        lambda arns: render.karpenter_controller_policies(ctx.cluster_name, ctx.region, arns[0], arns[1])
    )
    _, waits = pod_identity_role(
        ctx,
        "karpenter",
        render.KUBE_SYSTEM,
        render.KARPENTER_SERVICE_ACCOUNT,
        {name: documents.apply(_policy_json(name)) for name in render.KARPENTER_POLICY_NAMES},
    )
    crds = release(ctx, "karpenter-crd", KARPENTER_CRD_CHART, render.KUBE_SYSTEM, render.KARPENTER_CRD_RELEASE, {})
    controller = release(
        ctx,
        "karpenter",
        KARPENTER_CHART,
        render.KUBE_SYSTEM,
        render.KARPENTER_RELEASE,
        render.karpenter_values(ctx.cluster_name, ctx.region, render.karpenter_interruption_queue_name(ctx.cluster_name)),
        depends_on=[crds, queue, *waits, *node_role_policies],
        skip_crds=True,
    )
    return crds, controller


def _policy_json(name: str) -> Callable[[Mapping[str, Mapping[str, Any]]], str]:
    """A function giving the JSON of policy ``name`` of a set of policy documents by name."""
    return lambda documents: to_json(documents[name])


def load_balancer_controller(ctx: AddonContext, vpc_id: pulumi.Input[str]) -> k8s.helm.v3.Release:
    """The AWS Load Balancer Controller with its documented IAM policy."""
    _, waits = pod_identity_role(
        ctx,
        "load-balancer-controller",
        render.KUBE_SYSTEM,
        render.LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT,
        {"policy": to_json(render.aws_load_balancer_controller_policy())},
    )
    values = render.aws_load_balancer_controller_values(ctx.cluster_name, ctx.region, vpc_id, ctx.tags)
    return release(
        ctx,
        "load-balancer-controller",
        AWS_LOAD_BALANCER_CONTROLLER_CHART,
        render.KUBE_SYSTEM,
        render.LOAD_BALANCER_CONTROLLER_RELEASE,
        values,
        depends_on=waits,
    )


def keda(
    ctx: AddonContext, namespace: pulumi.Input[str], http_add_on: bool, *, depends_on: Sequence[pulumi.Resource] = ()
) -> dict[str, k8s.helm.v3.Release]:
    """KEDA, and its HTTP add-on (scale to zero) when ``http_add_on``; releases by release name. The
    operator starts after ``depends_on`` (its Pod Identity role, :func:`keda_operator_role`)."""
    core = release(ctx, "keda", KEDA_CHART, namespace, render.KEDA_RELEASE, render.keda_values(ctx.cluster_name),
                   depends_on=depends_on)
    if not http_add_on:
        return {render.KEDA_RELEASE: core}
    http = release(
        ctx,
        "keda-http-add-on",
        KEDA_HTTP_ADD_ON_CHART,
        namespace,
        render.KEDA_HTTP_ADD_ON_RELEASE,
        render.keda_http_add_on_values(),
        depends_on=[core],
    )
    return {render.KEDA_RELEASE: core, render.KEDA_HTTP_ADD_ON_RELEASE: http}


def keda_operator_role(ctx: AddonContext) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
    """KEDA's own AWS role (``<name>-keda-operator-role``), for its operator's service account in
    namespace ``keda``: it may only assume the cluster's queue scaler roles
    (:func:`cortex_iac.render.addons.keda_operator_policy`). Returns the role and what the KEDA
    release waits for."""
    return pod_identity_role(
        ctx, "keda-operator", KEDA_NAMESPACE, render.KEDA_OPERATOR_SERVICE_ACCOUNT,
        {"assume-queue-scalers": to_json(render.keda_operator_policy(ctx.cluster_name, ctx.region))},
    )


def metrics_server(ctx: AddonContext) -> k8s.helm.v3.Release:
    """metrics-server in kube-system."""
    return release(
        ctx, "metrics-server", METRICS_SERVER_CHART, render.KUBE_SYSTEM, render.METRICS_SERVER_RELEASE,
        render.metrics_server_values(),
    )


def prometheus(
    ctx: AddonContext,
    namespace: pulumi.Input[str],
    node_group: pulumi.Resource,
    values: Mapping[str, Any] | None = None,
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.helm.v3.Release:
    """The Prometheus server, on its own node group ``node_group``; ``values`` default to
    :func:`~cortex_iac.render.addons.prometheus_values` without observability."""
    return release(
        ctx, "prometheus", PROMETHEUS_CHART, namespace, render.PROMETHEUS_RELEASE,
        render.prometheus_values() if values is None else values,
        depends_on=[node_group, *depends_on],
    )


def nvidia_device_plugin(ctx: AddonContext) -> k8s.helm.v3.Release:
    """The NVIDIA device plugin DaemonSet (GPU nodes only)."""
    return release(
        ctx, "nvidia-device-plugin", NVIDIA_DEVICE_PLUGIN_CHART, render.KUBE_SYSTEM,
        render.NVIDIA_DEVICE_PLUGIN_RELEASE, render.nvidia_device_plugin_values(),
    )


def neuron_device_plugin(ctx: AddonContext) -> k8s.helm.v3.Release:
    """The Neuron device plugin DaemonSet (Inferentia nodes only)."""
    return release(
        ctx, "neuron-device-plugin", NEURON_HELM_CHART, render.KUBE_SYSTEM,
        render.NEURON_DEVICE_PLUGIN_RELEASE, render.neuron_device_plugin_values(),
    )


def fluent_bit(ctx: AddonContext, namespace: pulumi.Input[str], retention_days: int) -> k8s.helm.v3.Release:
    """aws-for-fluent-bit shipping container logs to a log group made here, with a role to write it."""
    log_group = aws.cloudwatch.LogGroup(
        f"{ctx.name}-logs",
        name=render.log_group_name(ctx.cluster_name),
        retention_in_days=retention_days,
        tags=dict(ctx.tags),
        opts=ctx.opts(),
    )
    _, waits = pod_identity_role(
        ctx,
        "fluent-bit",
        render.LOGGING_NAMESPACE,
        render.FLUENT_BIT_SERVICE_ACCOUNT,
        {"logs": log_group.arn.apply(lambda arn: to_json(render.fluent_bit_policy(arn)))},
    )
    return release(
        ctx, "fluent-bit", AWS_FOR_FLUENT_BIT_CHART, namespace, render.FLUENT_BIT_RELEASE,
        render.fluent_bit_values(ctx.region, render.log_group_name(ctx.cluster_name)),
        depends_on=[log_group, *waits],
    )


# --- observability --------------------------------------------------------------------------------


def alert_receiver_secret(
    ctx: AddonContext, namespace: pulumi.Input[str], secret: pulumi.Input[str]
) -> k8s.core.v1.Secret:
    """The Secret Alertmanager reads the receiver's URL or key from; ``secret`` (the stack secret
    ``cortex:alertReceiverSecret``) stays a Pulumi secret, so the plan shows it as ``[secret]``."""
    obj = obs.alert_receiver_secret(render.PROMETHEUS_NAMESPACE, ctx.cluster_name)
    return k8s.core.v1.Secret(
        f"{ctx.name}-alert-receiver",
        metadata={**object_meta(obj["metadata"]), "namespace": namespace},
        type=obj["type"],
        string_data={obs.ALERT_RECEIVER_SECRET_KEY: pulumi.Output.secret(secret)},
        opts=pulumi.ResourceOptions(parent=ctx.parent, provider=ctx.k8s_provider, depends_on=list(ctx.ready)),
    )


def grafana(
    ctx: AddonContext,
    namespace: pulumi.Input[str],
    spec: ObservabilitySpec,
    prometheus_url: str,
    dashboards: Mapping[str, Mapping[str, Any]],
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.helm.v3.Release:
    """Grafana: a generated admin password (``random.RandomPassword``, a secret output that Pulumi
    never shows) in the Secret the chart reads, the dashboards' ConfigMaps, and the release."""
    password = random.RandomPassword(
        f"{ctx.name}-grafana-admin", length=32, special=False, opts=pulumi.ResourceOptions(parent=ctx.parent)
    )
    obj = obs.grafana_admin_secret(render.PROMETHEUS_NAMESPACE, ctx.cluster_name)
    on_cluster = pulumi.ResourceOptions(parent=ctx.parent, provider=ctx.k8s_provider, depends_on=list(ctx.ready))
    admin = k8s.core.v1.Secret(
        f"{ctx.name}-grafana-admin",
        metadata={**object_meta(obj["metadata"]), "namespace": namespace},
        type=obj["type"],
        string_data={**obj["stringData"], obs.GRAFANA_ADMIN_PASSWORD_KEY: password.result},
        opts=on_cluster,
    )
    boards: list[pulumi.Resource] = []
    for key, board in dashboards.items():
        cm = obs.dashboard_config_map(key, board, render.PROMETHEUS_NAMESPACE)
        boards.append(k8s.core.v1.ConfigMap(
            f"{ctx.name}-dashboard-{key}",
            metadata={**object_meta(cm["metadata"]), "namespace": namespace},
            data=cm["data"],
            opts=on_cluster,
        ))
    values = obs.grafana_values(prometheus_url, spec.grafana, render.system_placement())
    return release(
        ctx, "grafana", GRAFANA_CHART, namespace, obs.GRAFANA_RELEASE, values, depends_on=[admin, *boards, *depends_on]
    )


def dcgm_exporter(ctx: AddonContext, namespace: pulumi.Input[str]) -> k8s.helm.v3.Release:
    """NVIDIA's DCGM exporter DaemonSet on the GPU nodes (metrics per GPU and the pod using it)."""
    return release(
        ctx, "dcgm-exporter", DCGM_EXPORTER_CHART, namespace, obs.DCGM_EXPORTER_RELEASE, obs.dcgm_exporter_values(),
    )
