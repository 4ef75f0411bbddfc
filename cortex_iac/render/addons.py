"""The cluster add-ons as data: Helm values, IAM policies, the Karpenter interruption plumbing.

Pure functions of plain values (names, ARNs, the region); the Cluster component wires them into
Helm releases and IAM resources. Every values key used here exists in the pinned chart's
values.yaml (chart versions in :mod:`cortex_iac.versions`).

Placement: the add-ons' controllers run on the small on-demand *system* node group, which carries
:data:`SYSTEM_NODE_LABELS` and the ``CriticalAddonsOnly`` taint (the EKS convention CoreDNS and
Karpenter already tolerate), so model pods never land there and Karpenter never has to find room for
its own controller. Prometheus gets its own node group of Cortex's ``prometheus_instance_type``.
DaemonSets (log shipping, the GPU and Neuron device plugins) tolerate what they must to reach their
nodes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cortex_iac.errors import CortexError
from cortex_iac.render.envoy import DEFAULT_DEREGISTRATION_SECONDS, prometheus_scrape_job, runtime_scrape_job
from cortex_iac.render.iam import partition_of, policy_document
from cortex_iac.render.karpenter import GPU_RESOURCE, NEURON_RESOURCE, accelerator_label
from cortex_iac.render.observability import queries
from cortex_iac.render.observability.addons import alertmanager_values
from cortex_iac.render.observability.logs import fluent_bit_filters
from cortex_iac.render.observability.rules import API_RULES_DIR, API_RULES_LABEL
from cortex_iac.render.routing import (
    EXTERNAL_SCALER_PORT,
    INGRESS_CLASS,
    INGRESS_GROUP,
    INTERCEPTOR_ADMIN_PORT,
    INTERCEPTOR_PROXY_PORT,
    INTERCEPTOR_PROXY_SERVICE,
    KEDA_NAMESPACE,
)
from cortex_iac.specs import CLUSTER_NAME_TAG
from cortex_iac.specs.observability import AlertingSpec
from cortex_iac.specs.pod import MAX_REQUEST_TIMEOUT_SECONDS
from cortex_iac.versions import AWS_LOAD_BALANCER_CONTROLLER_POLICY_FILE, K8S_SIDECAR_IMAGE

# Node role label of the node groups the Cluster manages itself (not Karpenter's).
ROLE_LABEL = "cortex.dev/role"
SYSTEM_NODE_LABELS = {ROLE_LABEL: "system"}
SYSTEM_TAINT = {"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}
PROMETHEUS_NODE_LABELS = {ROLE_LABEL: "prometheus"}
PROMETHEUS_TAINT = {"key": ROLE_LABEL, "value": "prometheus", "effect": "NO_SCHEDULE"}

# Namespaces. Karpenter and the load balancer controller stay in kube-system: Karpenter's docs rely
# on kube-system's API priority (FlowSchemas) for the controller. The APIs' namespace and KEDA's are
# the ones the API renderers route to (render/realtime.py, render/routing.py).
PROMETHEUS_NAMESPACE = "prometheus"
LOGGING_NAMESPACE = "logging"
KUBE_SYSTEM = "kube-system"

# Helm release names, fixed so the charts' service account and service names are known.
KARPENTER_RELEASE = "karpenter"
KARPENTER_CRD_RELEASE = "karpenter-crd"
LOAD_BALANCER_CONTROLLER_RELEASE = "aws-load-balancer-controller"
KEDA_RELEASE = "keda"
KEDA_HTTP_ADD_ON_RELEASE = "keda-add-ons-http"
METRICS_SERVER_RELEASE = "metrics-server"
PROMETHEUS_RELEASE = "prometheus"
NVIDIA_DEVICE_PLUGIN_RELEASE = "nvidia-device-plugin"
NEURON_DEVICE_PLUGIN_RELEASE = "neuron-device-plugin"
FLUENT_BIT_RELEASE = "aws-for-fluent-bit"

# The Karpenter chart's metrics port (controller.metrics.port).
KARPENTER_METRICS_PORT = 8080

# Service accounts that get an IAM role through EKS Pod Identity.
KARPENTER_SERVICE_ACCOUNT = "karpenter"
LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT = "aws-load-balancer-controller"
FLUENT_BIT_SERVICE_ACCOUNT = "aws-for-fluent-bit"

# The Prometheus server Service the chart names "<release>-server" (port 80): the address the API
# ScaledObjects query (render/autoscaling.py), checked equal by the tests.
PROMETHEUS_URL = f"http://{PROMETHEUS_RELEASE}-server.{PROMETHEUS_NAMESPACE}.svc.cluster.local:80"
# The HTTP add-on's interceptor proxy, as the chart names it ("<chart>-interceptor-proxy").
KEDA_HTTP_INTERCEPTOR_SERVICE = f"{INTERCEPTOR_PROXY_SERVICE}.{KEDA_NAMESPACE}.svc.cluster.local:{INTERCEPTOR_PROXY_PORT}"

# How often the API pods' in-flight gauges are scraped: Cortex's autoscaler looked every 10 s, and
# the chart's global default (1 m) would leave one sample in a 60 s window.
API_SCRAPE_INTERVAL = "10s"
# Cortex's autoscaling only needs recent samples, so Prometheus keeps little and uses node disk.
PROMETHEUS_RETENTION = "7d"
PROMETHEUS_RETENTION_SIZE = "20GB"
PROMETHEUS_DISK_GIB = 50  # root volume of the Prometheus node, holding the TSDB

# EventBridge events Karpenter drains nodes on (its v1.14 getting-started CloudFormation template).
KARPENTER_INTERRUPTION_EVENTS: dict[str, dict[str, list[str]]] = {
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "instance-state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
    "capacity-reservation-interruption": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Capacity Reservation Instance Interruption Warning"],
    },
}
# Interruption messages are useless once the node is gone; Karpenter's template keeps them 5 min.
KARPENTER_QUEUE_RETENTION_SECONDS = 300

# The Karpenter controller's policies, as its getting-started template splits them (each must stay
# under IAM's 6,144-character limit for a managed policy).
KARPENTER_POLICY_NAMES = ("node-lifecycle", "iam-integration", "eks-integration", "interruption", "resource-discovery")

_SQS_NAME_MAX = 80


def resource_tags(cluster_name: str, tags: Mapping[str, str]) -> dict[str, str]:
    """Tags of every AWS resource of a cluster: cluster.yaml's ``tags`` plus
    ``cortex.dev/cluster-name: <cluster>``, as Cortex did (the spec already refuses other
    ``cortex.dev/`` keys and ``aws:`` keys)."""
    return {**tags, CLUSTER_NAME_TAG: cluster_name}


@dataclass(frozen=True)
class LoadBalancerSettings:
    """The shared API load balancer, as an API's route needs it.

    APIs put an Ingress of class ``ingress_class_name``, whose IngressClassParams
    (:func:`cortex_iac.render.routing.ingress_class_objects`, made by the Cluster) fixes ``scheme``,
    the ``cidr_allow_list``, the ``certificate_arn`` (None: HTTP only) and the IngressGroup
    ``ingress_group_name``: every API shares one ALB and no API can widen access.
    """

    scheme: str
    cidr_allow_list: tuple[str, ...]
    certificate_arn: str | None
    ingress_class_name: str = INGRESS_CLASS
    ingress_group_name: str = INGRESS_GROUP


@dataclass(frozen=True)
class AddonsArgs:
    """Which add-ons the Cluster installs; every one is on by default.

    - ``karpenter`` (True): node autoscaling; required when the cluster has ``node_groups``.
    - ``aws_load_balancer_controller`` (True): the API load balancer; APIs need it for a URL.
    - ``keda`` (True) and ``keda_http_add_on`` (True, needs ``keda``): API autoscaling, to zero.
    - ``metrics_server`` (True): ``kubectl top`` and CPU-based autoscaling.
    - ``prometheus`` (True): the metric store KEDA scales APIs on; runs on its own node group of
      ``prometheus_instance_type``.
    - ``nvidia_device_plugin`` (True): installed only when a node group has NVIDIA GPUs.
    - ``neuron_device_plugin`` (True): installed only when a node group has Inferentia chips.
    - ``fluent_bit`` (True): container logs to the CloudWatch log group ``/cortex/<cluster>``,
      kept ``log_retention_days`` (30).
    - ``dcgm_exporter`` (True): NVIDIA's GPU metrics exporter, installed only with Prometheus and a
      node group with NVIDIA GPUs. Grafana and Alertmanager are set by the stack's
      ``cortex:observability`` (:class:`~cortex_iac.specs.observability.ObservabilitySpec`).

    Plain data (no Pulumi): :func:`cortex_iac.render.cluster_layout.cluster_layout` decides from
    it; :mod:`cortex_iac.components.addons` re-exports it.
    """

    karpenter: bool = True
    aws_load_balancer_controller: bool = True
    keda: bool = True
    keda_http_add_on: bool = True
    metrics_server: bool = True
    prometheus: bool = True
    nvidia_device_plugin: bool = True
    neuron_device_plugin: bool = True
    fluent_bit: bool = True
    log_retention_days: int = 30
    dcgm_exporter: bool = True

    def check(self, node_groups: Sequence[str]) -> None:
        """Raise CortexError for switches that contradict each other or the node groups."""
        if self.keda_http_add_on and not self.keda:
            raise CortexError("addons: keda_http_add_on needs keda (it is a KEDA external scaler); switch both off or keda on")
        if node_groups and not self.karpenter:
            raise CortexError(
                f"addons: karpenter is off but cluster.yaml has node_groups {list(node_groups)}; "
                "Karpenter launches their nodes"
            )
        if self.log_retention_days not in _LOG_RETENTION_DAYS:
            raise CortexError(
                f"addons: log_retention_days: {self.log_retention_days} is not a CloudWatch retention; "
                f"allowed: {', '.join(map(str, _LOG_RETENTION_DAYS))}"
            )


# The values CloudWatch Logs accepts for a log group's retention (0 would mean forever: not offered).
_LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


def namespace_object(name: str, cluster_name: str) -> dict[str, Any]:
    """A namespace of an add-on, labelled with the cluster it belongs to."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {CLUSTER_NAME_TAG: cluster_name}}}


def system_placement() -> dict[str, Any]:
    """``nodeSelector`` and ``tolerations`` values that put a controller on the system node group."""
    return {
        "nodeSelector": dict(SYSTEM_NODE_LABELS),
        "tolerations": [{"key": SYSTEM_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
    }


# --- Karpenter ---------------------------------------------------------------------------------


def karpenter_interruption_queue_name(cluster_name: str) -> str:
    """Name of the SQS queue Karpenter reads interruption events from: ``<cluster>-karpenter``."""
    name = f"{cluster_name}-karpenter"
    if len(name) > _SQS_NAME_MAX:
        raise CortexError(
            f"cluster_name: {cluster_name!r} is too long for the Karpenter interruption queue name "
            f"{name!r} (SQS allows {_SQS_NAME_MAX} characters)"
        )
    return name


def karpenter_values(cluster_name: str, region: str, interruption_queue_name: str) -> dict[str, Any]:
    """Values of the ``karpenter`` chart.

    The CRDs come from the separate ``karpenter-crd`` release. ``staticCapacity`` is switched on
    because Cortex's ``min_instances`` becomes a static NodePool, ``nodeOverlay`` because
    Inferentia groups declare their huge pages to Karpenter with a NodeOverlay (both in
    render/karpenter.py). The controller keeps the chart's affinity (never on a Karpenter node) and
    its CriticalAddonsOnly toleration; requests are sized for the small system nodes rather than
    the docs' 1 CPU / 1 GiB.
    ``AWS_REGION`` is set so the controller needs no instance metadata to find its region.
    """
    return {
        "serviceAccount": {"name": KARPENTER_SERVICE_ACCOUNT},
        "settings": {
            "clusterName": cluster_name,
            "interruptionQueue": interruption_queue_name,
            "featureGates": {"staticCapacity": True, "nodeOverlay": True},
        },
        "nodeSelector": {"kubernetes.io/os": "linux", **SYSTEM_NODE_LABELS},
        "controller": {
            "env": [{"name": "AWS_REGION", "value": region}],
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        },
        # Scraped by the Prometheus chart's annotated-service job (the chart's metrics port): the
        # cluster dashboard's Karpenter panels and the spot-interruption alert read it.
        "service": {"annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(KARPENTER_METRICS_PORT)}},
    }


def karpenter_interruption_queue_policy(queue_arn: str) -> dict[str, Any]:
    """Queue policy: EventBridge (and SQS) may send to the queue; nothing over plain HTTP."""
    return policy_document(
        [
            {
                "Sid": "AllowEventBridge",
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyHTTP",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ]
    )


def karpenter_controller_policies(
    cluster_name: str, region: str, node_role_arn: str, queue_arn: str
) -> dict[str, dict[str, Any]]:
    """The Karpenter controller's IAM policies, by short name.

    The statements of Karpenter v1.14's getting-started CloudFormation template (node lifecycle,
    IAM integration, EKS integration, interruption, resource discovery), scoped to this cluster and
    region; ``*`` stands for the account in ARNs of resources Karpenter itself creates, since the
    role can only act in its own account anyway. Zonal shift is not enabled, so its policy is left out.
    Added to the template: creating the EC2 spot service-linked role, which Karpenter's docs have
    users create by hand once per account.
    """
    ec2 = f"arn:aws:ec2:{region}"
    owned = {f"aws:RequestTag/kubernetes.io/cluster/{cluster_name}": "owned"}
    owned_resource = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "owned"}
    nodepool_request = {"aws:RequestTag/karpenter.sh/nodepool": "*"}
    nodepool_resource = {"aws:ResourceTag/karpenter.sh/nodepool": "*"}
    created = [f"{ec2}:*:{kind}/*" for kind in (
        "fleet", "instance", "volume", "network-interface", "launch-template", "spot-instances-request"
    )]
    profile = "arn:aws:iam::*:instance-profile/*"
    nodeclass_request = {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}
    nodeclass_resource = {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"}
    region_resource = {"aws:ResourceTag/topology.kubernetes.io/region": region}
    region_request = {"aws:RequestTag/topology.kubernetes.io/region": region}
    cluster_request = {"aws:RequestTag/eks:eks-cluster-name": cluster_name}
    return {
        "node-lifecycle": policy_document([
            {
                "Sid": "AllowScopedEC2InstanceAccessActions",
                "Effect": "Allow",
                "Resource": [
                    f"{ec2}::image/*", f"{ec2}::snapshot/*", f"{ec2}:*:security-group/*", f"{ec2}:*:subnet/*",
                    f"{ec2}:*:capacity-reservation/*", f"{ec2}:*:placement-group/*",
                ],
                "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            },
            {
                "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
                "Effect": "Allow",
                "Resource": f"{ec2}:*:launch-template/*",
                "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
                "Condition": {"StringEquals": {**owned_resource}, "StringLike": {**nodepool_resource}},
            },
            {
                "Sid": "AllowScopedEC2InstanceActionsWithTags",
                "Effect": "Allow",
                "Resource": list(created),
                "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
                "Condition": {"StringEquals": {**owned, **cluster_request}, "StringLike": {**nodepool_request}},
            },
            {
                "Sid": "AllowScopedResourceCreationTagging",
                "Effect": "Allow",
                "Resource": list(created),
                "Action": "ec2:CreateTags",
                "Condition": {
                    "StringEquals": {
                        **owned, **cluster_request,
                        "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                    },
                    "StringLike": {**nodepool_request},
                },
            },
            {
                "Sid": "AllowScopedResourceTagging",
                "Effect": "Allow",
                "Resource": f"{ec2}:*:instance/*",
                "Action": "ec2:CreateTags",
                "Condition": {
                    "StringEquals": {**owned_resource},
                    "StringLike": {**nodepool_resource},
                    "StringEqualsIfExists": {**cluster_request},
                    "ForAllValues:StringEquals": {
                        "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                    },
                },
            },
            {
                "Sid": "AllowScopedDeletion",
                "Effect": "Allow",
                "Resource": [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
                "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                "Condition": {"StringEquals": {**owned_resource}, "StringLike": {**nodepool_resource}},
            },
        ]),
        "iam-integration": policy_document([
            {
                "Sid": "AllowPassingInstanceRole",
                "Effect": "Allow",
                "Resource": node_role_arn,
                "Action": "iam:PassRole",
                "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com"]}},
            },
            {
                # EC2 creates the spot service-linked role on an account's first spot launch, as the
                # caller; without the right, spot launches fail and Karpenter falls back to on-demand.
                "Sid": "AllowSpotServiceLinkedRoleCreation",
                "Effect": "Allow",
                "Resource": "arn:aws:iam::*:role/aws-service-role/spot.amazonaws.com/*",
                "Action": "iam:CreateServiceLinkedRole",
                "Condition": {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}},
            },
            {
                "Sid": "AllowScopedInstanceProfileCreationActions",
                "Effect": "Allow",
                "Resource": profile,
                "Action": ["iam:CreateInstanceProfile"],
                "Condition": {
                    "StringEquals": {**owned, **cluster_request, **region_request},
                    "StringLike": {**nodeclass_request},
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileTagActions",
                "Effect": "Allow",
                "Resource": profile,
                "Action": ["iam:TagInstanceProfile"],
                "Condition": {
                    "StringEquals": {**owned_resource, **region_resource, **owned, **cluster_request, **region_request},
                    "StringLike": {**nodeclass_resource, **nodeclass_request},
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileActions",
                "Effect": "Allow",
                "Resource": profile,
                "Action": ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"],
                "Condition": {"StringEquals": {**owned_resource, **region_resource}, "StringLike": {**nodeclass_resource}},
            },
        ]),
        "eks-integration": policy_document([
            {
                "Sid": "AllowAPIServerEndpointDiscovery",
                "Effect": "Allow",
                "Resource": f"arn:aws:eks:{region}:*:cluster/{cluster_name}",
                "Action": "eks:DescribeCluster",
            },
        ]),
        "interruption": policy_document([
            {
                "Sid": "AllowInterruptionQueueActions",
                "Effect": "Allow",
                "Resource": queue_arn,
                "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            },
        ]),
        "resource-discovery": policy_document([
            {
                "Sid": "AllowRegionalReadActions",
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "ec2:DescribeCapacityReservations", "ec2:DescribeImages", "ec2:DescribeInstances",
                    "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplates", "ec2:DescribePlacementGroups", "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets",
                ],
                "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
            },
            {
                "Sid": "AllowSSMReadActions",
                "Effect": "Allow",
                "Resource": f"arn:aws:ssm:{region}::parameter/aws/service/*",
                "Action": "ssm:GetParameter",
            },
            {"Sid": "AllowPricingReadActions", "Effect": "Allow", "Resource": "*", "Action": "pricing:GetProducts"},
            {
                "Sid": "AllowUnscopedInstanceProfileListAction",
                "Effect": "Allow",
                "Resource": "*",
                "Action": "iam:ListInstanceProfiles",
            },
            {
                "Sid": "AllowInstanceProfileReadActions",
                "Effect": "Allow",
                "Resource": profile,
                "Action": "iam:GetInstanceProfile",
            },
        ]),
    }


# --- AWS Load Balancer Controller ------------------------------------------------------------


# What the controller's published policy grants for WAF (classic and v2) and Shield: the controller
# calls these only with its WAF / Shield features on, which the chart values turn off (nothing here
# attaches a web ACL or Shield protection to the API load balancer). Subtracted from the upstream
# file, which stays as published (cortex_iac/data/, see versions.py for its source).
LOAD_BALANCER_CONTROLLER_UNUSED_ACTIONS = frozenset({
    "waf-regional:GetWebACL", "waf-regional:GetWebACLForResource", "waf-regional:AssociateWebACL",
    "waf-regional:DisassociateWebACL", "wafv2:GetWebACL", "wafv2:GetWebACLForResource",
    "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL", "shield:GetSubscriptionState",
    "shield:DescribeProtection", "shield:CreateProtection", "shield:DeleteProtection",
    "elasticloadbalancing:SetWebAcl",
})


def upstream_aws_load_balancer_controller_policy() -> dict[str, Any]:
    """The controller's IAM policy exactly as its docs publish it for the pinned version (a data file)."""
    text = resources.files("cortex_iac.data").joinpath(AWS_LOAD_BALANCER_CONTROLLER_POLICY_FILE).read_text()
    return json.loads(text)  # type: ignore[no-any-return]


def aws_load_balancer_controller_policy() -> dict[str, Any]:
    """The controller's IAM policy: the upstream one without :data:`LOAD_BALANCER_CONTROLLER_UNUSED_ACTIONS`
    (statements left with no action are dropped). Raises if an action to drop is not in the upstream
    file, so a version bump that renames them is noticed instead of silently granting them."""
    policy = upstream_aws_load_balancer_controller_policy()
    granted = {a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    missing = LOAD_BALANCER_CONTROLLER_UNUSED_ACTIONS - granted
    if missing:
        raise CortexError(f"{AWS_LOAD_BALANCER_CONTROLLER_POLICY_FILE} no longer grants {sorted(missing)}: "
                          "update LOAD_BALANCER_CONTROLLER_UNUSED_ACTIONS with the new version")
    statements = []
    for statement in policy["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        kept = [a for a in actions if a not in LOAD_BALANCER_CONTROLLER_UNUSED_ACTIONS]
        if kept:
            statements.append({**statement, "Action": kept if isinstance(statement["Action"], list) else kept[0]})
    return {**policy, "Statement": statements}


def aws_load_balancer_controller_values(
    cluster_name: str, region: str, vpc_id: object, tags: Mapping[str, str]
) -> dict[str, Any]:
    """Values of the ``aws-load-balancer-controller`` chart.

    ``vpc_id`` is placed as given: a string, or the Pulumi output of a VPC made in the same program
    (so a plan shows only that value as unknown, not the whole values).

    Region and VPC are given, so the controller needs no instance metadata (nodes allow one IMDS
    hop, which pods cannot use). The chart makes no IngressClass: the API class and its parameters
    come from :func:`cortex_iac.render.routing.ingress_class_objects`. ``tags`` go on every AWS
    resource the controller creates. The Service mutating webhook (on by default, failing closed)
    is off: it would refuse the other releases' Services while the controller's pods are not ready
    (aws-load-balancer-controller#4140), and APIs are routed by Ingress, never by a Service of type
    LoadBalancer. WAF and Shield are off: nothing attaches them, and the controller would otherwise
    query them on every reconcile.
    """
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "serviceAccount": {"name": LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT},
        "ingressClass": INGRESS_CLASS,
        "createIngressClassResource": False,
        "enableServiceMutatorWebhook": False,
        # Not used, and their permissions are not granted (aws_load_balancer_controller_policy).
        "enableShield": False,
        "enableWaf": False,
        "enableWafv2": False,
        "defaultTags": dict(tags),
        **system_placement(),
    }


# --- KEDA ----------------------------------------------------------------------------------------


def keda_values(cluster_name: str) -> dict[str, Any]:
    """Values of the ``keda`` chart (CRDs installed by the chart, the default)."""
    return {"clusterName": cluster_name, "crds": {"install": True}, **system_placement()}


# The chart's operator service account (its default name), which gets KEDA's own AWS role through
# EKS Pod Identity: AsyncAPI queue scalers assume a role of the API's from it.
KEDA_OPERATOR_SERVICE_ACCOUNT = "keda-operator"


def queue_scaler_role_path(cluster_name: str) -> str:
    """The IAM path of the cluster's queue scaler roles (one per AsyncAPI): KEDA's role may assume
    the roles under it, and no other."""
    return f"/cortex/{cluster_name}/queue-scalers/"


def keda_operator_policy(cluster_name: str, region: str) -> dict[str, Any]:
    """KEDA's own role: assuming the cluster's queue scaler roles, nothing else (each of those may
    only read its API's queue depths). The account is ``*``: the roles are made by the APIs, and the
    path holds the cluster's name."""
    arn = f"arn:{partition_of(region)}:iam::*:role{queue_scaler_role_path(cluster_name)}*"
    return policy_document([{"Sid": "AssumeQueueScalerRoles", "Effect": "Allow",
                             "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": arn}])


# The KEDA HTTP interceptor's replicas and drain (see keda_http_add_on_values).
INTERCEPTOR_MIN_REPLICAS = 2
INTERCEPTOR_DRAIN_SECONDS = MAX_REQUEST_TIMEOUT_SECONDS + 1


def keda_http_add_on_values() -> dict[str, Any]:
    """Values of the ``keda-add-ons-http`` chart.

    Operator and scaler run on the system nodes; the interceptor is in the request path and scales
    with traffic, so it may run anywhere (it tolerates the system taint, but is not bound to it).
    The ports are set from the constants the API renderers address them by (render/routing.py).
    """
    return {
        "crds": {"install": True},
        "operator": system_placement(),
        "scaler": {**system_placement(), "grpcPort": EXTERNAL_SCALER_PORT},
        "interceptor": {
            "tolerations": system_placement()["tolerations"],
            "proxy": {"port": INTERCEPTOR_PROXY_PORT},
            "admin": {"port": INTERCEPTOR_ADMIN_PORT},
            # It holds requests for scale-to-zero APIs, up to the longest request (300 s): it must
            # roll without cutting them. At least 2 replicas, at most one evicted at a time; on
            # SIGTERM it keeps serving while the load balancer deregisters it (as the API pods
            # do), then waits for what it holds, and the kubelet waits for both.
            "replicas": {"min": INTERCEPTOR_MIN_REPLICAS, "max": 50},
            "pdb": {"enabled": True, "minAvailable": 0, "maxUnavailable": 1},
            "shutdownDelay": f"{DEFAULT_DEREGISTRATION_SECONDS}s",
            "drainTimeout": f"{INTERCEPTOR_DRAIN_SECONDS}s",
            "terminationGracePeriodSeconds": DEFAULT_DEREGISTRATION_SECONDS + INTERCEPTOR_DRAIN_SECONDS + 10,
            "responseHeaderTimeout": f"{MAX_REQUEST_TIMEOUT_SECONDS}s",
        },
    }


# --- metrics-server, Prometheus --------------------------------------------------------------


def metrics_server_values() -> dict[str, Any]:
    """Values of the ``metrics-server`` chart."""
    return system_placement()


def prometheus_values(
    retention: str = PROMETHEUS_RETENTION,
    retention_size: str = PROMETHEUS_RETENTION_SIZE,
    *,
    rules: Mapping[str, Any] | None = None,
    alerting: AlertingSpec | None = None,
) -> dict[str, Any]:
    """Values of the ``prometheus`` chart: the server, Alertmanager, kube-state-metrics and the
    node exporter (no pushgateway).

    The platform needs the API pods' in-flight gauges, scraped every :data:`API_SCRAPE_INTERVAL` by
    the ``cortex-envoy`` job of :func:`prometheus_scrape_job` (pods with the Envoy sidecar) and the
    ``cortex-runtime`` job of :func:`runtime_scrape_job` (pods without it), besides the chart's default jobs
    (annotated pods and services, the kubelets' cAdvisor). Data lives on the node's disk (no EBS CSI
    driver needed) for ``retention`` (default 7d) or ``retention_size`` (default 20GB). The server
    runs alone on the Prometheus node group. Observability (docs/observability.md) adds the rest,
    see :func:`observability_prometheus_values`.
    """
    jobs = (prometheus_scrape_job(), runtime_scrape_job())
    values: dict[str, Any] = {
        "alertmanager": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "prometheus-node-exporter": {"enabled": False},
        "kube-state-metrics": {"enabled": False},
        "server": {
            "retention": retention,
            "retentionSize": retention_size,
            "persistentVolume": {"enabled": False},
            "nodeSelector": dict(PROMETHEUS_NODE_LABELS),
            "tolerations": [
                {"key": PROMETHEUS_TAINT["key"], "operator": "Equal", "value": PROMETHEUS_TAINT["value"],
                 "effect": "NoSchedule"},
            ],
        },
        "scrapeConfigs": {job["job_name"]: {**job, "scrape_interval": API_SCRAPE_INTERVAL} for job in jobs},
    }
    if rules is not None:
        _merge(values, observability_prometheus_values(rules, alerting or AlertingSpec()))
    return values


# --- observability: the Prometheus chart's side -------------------------------------------------------


def observability_prometheus_values(rules: Mapping[str, Any], alerting: AlertingSpec) -> dict[str, Any]:
    """What observability adds to the ``prometheus`` chart's values.

    - ``rules``: the cluster's rule files (:func:`~cortex_iac.render.observability.rules.cluster_rules`)
      as the chart's ``serverFiles``. The APIs' rule files are ConfigMaps labelled
      :data:`~cortex_iac.render.observability.rules.API_RULES_LABEL` in the Prometheus namespace
      (made with the APIs): a ``k8s-sidecar`` container (the one the Grafana chart collects
      dashboards with, pinned to the same image) watches them and writes them to a directory the
      server reads and the chart's config reloader watches, which reloads Prometheus on a change.
      The server's service account may already read ConfigMaps (the chart's ClusterRole).
    - Alertmanager (the sub-chart, wired to the server by the chart) with the receiver of ``alerting``.
    - kube-state-metrics exporting the node and pod labels the queries join on
      (:data:`~cortex_iac.render.observability.queries.NODE_LABELS_EXPORTED`), and the node
      exporter on every node (it tolerates every taint), both scraped by the chart's annotated
      service job.
    """
    mount = {"name": API_RULES_VOLUME, "mountPath": API_RULES_DIR}
    allow = [f"nodes=[{','.join(queries.NODE_LABELS_EXPORTED)}]", f"pods=[{','.join(queries.POD_LABELS_EXPORTED)}]"]
    sidecar = {
        "image": K8S_SIDECAR_IMAGE,
        "env": [
            {"name": "LABEL", "value": API_RULES_LABEL},
            {"name": "LABEL_VALUE", "value": "1"},
            {"name": "FOLDER", "value": API_RULES_DIR},
            {"name": "RESOURCE", "value": "configmap"},
            {"name": "NAMESPACE", "value": PROMETHEUS_NAMESPACE},
            {"name": "UNIQUE_FILENAMES", "value": "true"},
        ],
        "volumeMounts": [mount],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    return {
        "alertmanager": alertmanager_values(alerting, system_placement()),
        "kube-state-metrics": {"enabled": True, "metricLabelsAllowlist": allow, **system_placement()},
        "prometheus-node-exporter": {"enabled": True, "tolerations": [{"operator": "Exists"}]},
        "server": {
            "extraVolumes": [{"name": API_RULES_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}}],
            "extraVolumeMounts": [{**mount, "readOnly": True}],
            "sidecarContainers": {"cortex-rules": sidecar},
        },
        "configmapReload": {"prometheus": {"extraVolumeMounts": [{**mount, "readOnly": True}],
                                           "extraVolumeDirs": [API_RULES_DIR]}},
        "serverFiles": {
            **{name: dict(content) for name, content in rules.items()},
            "prometheus.yml": {"rule_files": [
                "/etc/config/recording_rules.yml", "/etc/config/alerting_rules.yml", f"{API_RULES_DIR}/*.yml",
            ]},
        },
    }


API_RULES_VOLUME = "cortex-api-rules"


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into ``into``, mappings key by key (as Helm merges values)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


# --- GPU device plugin ----------------------------------------------------------------------------


def nvidia_device_plugin_values() -> dict[str, Any]:
    """Values of the ``nvidia-device-plugin`` chart.

    The chart's default affinity is kept: besides the labels of NVIDIA's feature discovery (not
    installed) it admits nodes labelled ``nvidia.com/gpu.present: "true"``, which the GPU node
    groups put on their nodes (:func:`~cortex_iac.render.karpenter.accelerator_label`). The plugin
    tolerates the GPU taint the node groups carry (key
    :data:`~cortex_iac.render.karpenter.GPU_RESOURCE`).
    """
    return {
        "tolerations": [
            {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},
            {"key": SYSTEM_TAINT["key"], "operator": "Exists"},
        ],
    }


# --- Neuron device plugin ----------------------------------------------------------------------------


def neuron_device_plugin_values() -> dict[str, Any]:
    """Values of AWS's ``neuron-helm-chart``: only the Neuron device plugin DaemonSet.

    The plugin advertises ``aws.amazon.com/neuron`` on the Inferentia nodes. It runs on the nodes
    labelled :func:`~cortex_iac.render.karpenter.accelerator_label` by the node groups (on top of
    the chart's own affinity, a list of Neuron instance types) and tolerates their taint (key
    :data:`~cortex_iac.render.karpenter.NEURON_RESOURCE`). Every other component is off, named
    rather than left to the chart's defaults so an upgrade cannot switch one on:

    - the scheduler extension: on EKS it comes as a second kube-scheduler that only pods naming it
      in ``schedulerName`` use, which API pods do not (see docs/design.md, "Cluster");
    - the node problem detector: a privileged DaemonSet whose node condition nothing here acts on;
    - the DRA driver: the other way to expose the chips (the chart refuses both at once);
    - the UltraServer operator: Trainium UltraServers only.
    """
    return {
        "devicePlugin": {
            "enabled": True,
            "nodeSelector": {accelerator_label(NEURON_RESOURCE): "true"},
            "tolerations": [{"key": NEURON_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        },
        "scheduler": {"enabled": False},
        "npd": {"enabled": False},
        "draDriver": {"enabled": False},
        "ultraserverOperator": {"enabled": False},
    }


# --- logs ---------------------------------------------------------------------------------------------


def log_group_name(cluster_name: str) -> str:
    """CloudWatch log group of the cluster's container logs: ``/cortex/<cluster>``."""
    return f"/cortex/{cluster_name}"


def fluent_bit_values(region: str, log_group: str) -> dict[str, Any]:
    """Values of the ``aws-for-fluent-bit`` chart: container logs to ``log_group`` only.

    The group is created (with its retention) by the Cluster, so the chart must not create it; the
    DaemonSet tolerates every taint, so logs of GPU and system nodes are shipped too. JSON lines are
    parsed into ``data`` by the chart's kubernetes filter; ``additionalFilters``
    (:func:`~cortex_iac.render.observability.logs.fluent_bit_filters`) give each record top-level
    ``api``, ``kind``, ``pod``, ``namespace`` and ``container`` fields, so Logs Insights filters by API.
    """
    return {
        "cloudWatchLogs": {"enabled": True, "region": region, "logGroupName": log_group, "autoCreateGroup": False},
        "serviceAccount": {"name": FLUENT_BIT_SERVICE_ACCOUNT},
        "tolerations": [{"operator": "Exists"}],
        "additionalFilters": fluent_bit_filters(),
    }


def fluent_bit_policy(log_group_arn: str) -> dict[str, Any]:
    """IAM policy letting Fluent Bit write streams of one log group (and nothing else)."""
    return policy_document(
        [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            }
        ]
    )
