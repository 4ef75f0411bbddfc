"""Add-on rendering: Helm values and IAM policies (golden files), and the decisions they encode.

Golden files live in tests/render/golden/addons/; after an intended change, rewrite them with
``CORTEX_UPDATE_GOLDEN=1 pytest tests/render/test_addons.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cortex_iac.render import addons, autoscaling, envoy, karpenter, routing
from cortex_iac.specs import NodeGroupSpec
from tests.kube import validate_object

GOLDEN = Path(__file__).parent / "golden" / "addons"
CLUSTER = "cortex-test"
REGION = "us-west-2"
NODE_ROLE_ARN = "arn:aws:iam::123456789012:role/cortex-test-karpenter-node"
QUEUE_ARN = "arn:aws:sqs:us-west-2:123456789012:cortex-test-karpenter"
LOG_GROUP_ARN = "arn:aws:logs:us-west-2:123456789012:log-group:/cortex/cortex-test"
TAGS = {"team": "ml", "cortex.dev/cluster-name": CLUSTER}


def _values() -> dict[str, dict[str, Any]]:
    return {
        "karpenter": addons.karpenter_values(CLUSTER, REGION, addons.karpenter_interruption_queue_name(CLUSTER)),
        "aws-load-balancer-controller": addons.aws_load_balancer_controller_values(CLUSTER, REGION, "vpc-0123456789abcdef0", TAGS),
        "keda": addons.keda_values(CLUSTER),
        "keda-add-ons-http": addons.keda_http_add_on_values(),
        "metrics-server": addons.metrics_server_values(),
        "prometheus": addons.prometheus_values(),
        "nvidia-device-plugin": addons.nvidia_device_plugin_values(),
        "neuron-device-plugin": addons.neuron_device_plugin_values(),
        "aws-for-fluent-bit": addons.fluent_bit_values(REGION, addons.log_group_name(CLUSTER)),
    }


def _policies() -> dict[str, dict[str, Any]]:
    return {
        **{
            f"karpenter-{name}": doc
            for name, doc in addons.karpenter_controller_policies(CLUSTER, REGION, NODE_ROLE_ARN, QUEUE_ARN).items()
        },
        "karpenter-interruption-queue": addons.karpenter_interruption_queue_policy(QUEUE_ARN),
        "fluent-bit": addons.fluent_bit_policy(LOG_GROUP_ARN),
    }


def _check_golden(name: str, data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("CORTEX_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} missing; run with CORTEX_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{path} differs from the rendering; rerun with CORTEX_UPDATE_GOLDEN=1 and review"


def test_helm_values_golden() -> None:
    _check_golden("values", _values())


def test_policies_golden() -> None:
    _check_golden("policies", _policies())


# --- Karpenter -------------------------------------------------------------------------------------


def test_karpenter_settings_name_the_cluster_and_queue_and_allow_static_pools_and_overlays() -> None:
    values = addons.karpenter_values("c1", "eu-west-1", "c1-karpenter")
    assert values["settings"] == {
        "clusterName": "c1",
        "interruptionQueue": "c1-karpenter",
        # render/karpenter.py makes min_instances a static pool and declares Inferentia huge pages
        # with a NodeOverlay.
        "featureGates": {"staticCapacity": True, "nodeOverlay": True},
    }
    assert karpenter.NODE_OVERLAY_API_VERSION == "karpenter.sh/v1alpha1"
    assert values["serviceAccount"]["name"] == addons.KARPENTER_SERVICE_ACCOUNT
    assert values["controller"]["env"] == [{"name": "AWS_REGION", "value": "eu-west-1"}]


def test_interruption_queue_name_respects_the_sqs_limit() -> None:
    assert addons.karpenter_interruption_queue_name("a" * 70) == "a" * 70 + "-karpenter"
    with pytest.raises(Exception, match="SQS allows 80 characters"):
        addons.karpenter_interruption_queue_name("a" * 71)


def test_interruption_events_are_the_five_karpenter_drains_on() -> None:
    assert {e: p["detail-type"][0] for e, p in addons.KARPENTER_INTERRUPTION_EVENTS.items()} == {
        "scheduled-change": "AWS Health Event",
        "spot-interruption": "EC2 Spot Instance Interruption Warning",
        "rebalance": "EC2 Instance Rebalance Recommendation",
        "instance-state-change": "EC2 Instance State-change Notification",
        "capacity-reservation-interruption": "EC2 Capacity Reservation Instance Interruption Warning",
    }
    assert addons.KARPENTER_INTERRUPTION_EVENTS["scheduled-change"]["source"] == ["aws.health"]
    assert all(p["source"] == ["aws.ec2"] for e, p in addons.KARPENTER_INTERRUPTION_EVENTS.items() if e != "scheduled-change")


def test_queue_policy_lets_eventbridge_send_and_denies_plain_http() -> None:
    allow, deny = addons.karpenter_interruption_queue_policy(QUEUE_ARN)["Statement"]
    assert allow["Principal"]["Service"] == ["events.amazonaws.com", "sqs.amazonaws.com"]
    assert (allow["Action"], allow["Resource"]) == ("sqs:SendMessage", QUEUE_ARN)
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_karpenter_policies_are_scoped_to_cluster_region_role_and_queue() -> None:
    docs = addons.karpenter_controller_policies(CLUSTER, REGION, NODE_ROLE_ARN, QUEUE_ARN)
    assert tuple(docs) == addons.KARPENTER_POLICY_NAMES
    text = json.dumps(docs)
    # Every EC2 ARN is in the cluster's region; no account id is needed anywhere.
    assert set(re.findall(r"arn:aws:ec2:([a-z0-9-]*):", text)) == {REGION}
    assert "123456789012" not in text.replace(NODE_ROLE_ARN, "").replace(QUEUE_ARN, "")
    assert docs["iam-integration"]["Statement"][0]["Resource"] == NODE_ROLE_ARN
    assert docs["interruption"]["Statement"][0]["Resource"] == QUEUE_ARN
    assert docs["eks-integration"]["Statement"][0]["Resource"] == f"arn:aws:eks:{REGION}:*:cluster/{CLUSTER}"
    # Launches and deletions only of resources tagged as this cluster's.
    for statement in docs["node-lifecycle"]["Statement"][1:]:
        conditions = json.dumps(statement["Condition"])
        assert f"kubernetes.io/cluster/{CLUSTER}" in conditions


def test_karpenter_may_create_the_spot_service_linked_role_and_no_other() -> None:
    # A new account has no spot role; without it spot launches fail and fall back to on-demand.
    statements = [
        s for doc in addons.karpenter_controller_policies(CLUSTER, REGION, NODE_ROLE_ARN, QUEUE_ARN).values()
        for s in doc["Statement"] if "iam:CreateServiceLinkedRole" in json.dumps(s["Action"])
    ]
    assert statements == [{
        "Sid": "AllowSpotServiceLinkedRoleCreation",
        "Effect": "Allow",
        "Resource": "arn:aws:iam::*:role/aws-service-role/spot.amazonaws.com/*",
        "Action": "iam:CreateServiceLinkedRole",
        "Condition": {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}},
    }]


def test_every_managed_policy_fits_iams_size_limit() -> None:
    # IAM counts a managed policy's characters without whitespace; the limit is 6,144.
    documents = [*_policies().values(), addons.aws_load_balancer_controller_policy()]
    for doc in documents:
        assert len(re.sub(r"\s", "", json.dumps(doc))) <= 6144


# --- load balancer controller --------------------------------------------------------------------


def test_load_balancer_controller_policy_is_the_documented_one() -> None:
    doc = addons.aws_load_balancer_controller_policy()
    assert doc["Version"] == "2012-10-17"
    assert len(doc["Statement"]) == 16
    actions = {a for s in doc["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"elasticloadbalancing:CreateLoadBalancer", "ec2:AuthorizeSecurityGroupIngress", "acm:DescribeCertificate"} <= actions


def test_load_balancer_controller_needs_no_instance_metadata_and_makes_no_ingress_class() -> None:
    values = addons.aws_load_balancer_controller_values(CLUSTER, REGION, "vpc-1", TAGS)
    assert (values["region"], values["vpcId"], values["clusterName"]) == (REGION, "vpc-1", CLUSTER)
    assert values["createIngressClassResource"] is False  # render/routing.py owns the API IngressClass
    assert values["ingressClass"] == routing.INGRESS_CLASS
    assert values["defaultTags"] == TAGS


def test_load_balancer_controller_mutates_no_services() -> None:
    # The chart's Service webhook (failurePolicy Fail) would refuse every other release's Services
    # while the controller's pods are not ready; APIs are routed by Ingress only.
    values = addons.aws_load_balancer_controller_values(CLUSTER, REGION, "vpc-1", TAGS)
    assert values["enableServiceMutatorWebhook"] is False


# --- placement, namespaces, service addresses ------------------------------------------------------


def test_controllers_sit_on_the_system_nodes_and_tolerate_their_taint() -> None:
    placement = addons.system_placement()
    assert placement["nodeSelector"] == addons.SYSTEM_NODE_LABELS
    assert placement["tolerations"] == [{"key": addons.SYSTEM_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}]
    values = _values()
    for chart in ("aws-load-balancer-controller", "keda", "metrics-server"):
        assert values[chart]["nodeSelector"] == addons.SYSTEM_NODE_LABELS, chart
        assert values[chart]["tolerations"] == placement["tolerations"], chart
    for part in ("operator", "scaler"):
        assert values["keda-add-ons-http"][part]["nodeSelector"] == addons.SYSTEM_NODE_LABELS
    assert "nodeSelector" not in values["keda-add-ons-http"]["interceptor"]  # scales with traffic, anywhere
    # Karpenter keeps the chart's CriticalAddonsOnly toleration and only adds the node selector.
    assert values["karpenter"]["nodeSelector"] == {"kubernetes.io/os": "linux", **addons.SYSTEM_NODE_LABELS}


def test_http_add_on_ports_are_the_ones_the_api_routes_use() -> None:
    values = addons.keda_http_add_on_values()
    assert values["interceptor"]["proxy"]["port"] == routing.INTERCEPTOR_PROXY_PORT
    assert values["interceptor"]["admin"]["port"] == routing.INTERCEPTOR_ADMIN_PORT
    assert values["scaler"]["grpcPort"] == routing.EXTERNAL_SCALER_PORT
    assert addons.KEDA_HTTP_INTERCEPTOR_SERVICE == "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local:8080"


def test_prometheus_address_is_the_one_scaled_objects_query() -> None:
    assert addons.PROMETHEUS_URL == autoscaling.PROMETHEUS_ADDRESS


@pytest.mark.parametrize("name", [addons.PROMETHEUS_NAMESPACE, addons.LOGGING_NAMESPACE, routing.KEDA_NAMESPACE])
def test_namespace_objects_are_valid(name: str) -> None:
    obj = addons.namespace_object(name, CLUSTER)
    validate_object(obj)
    assert obj["metadata"]["labels"] == {"cortex.dev/cluster-name": CLUSTER}


def test_resource_tags_add_the_cluster_name() -> None:
    assert addons.resource_tags("c1", {"team": "ml"}) == {"team": "ml", "cortex.dev/cluster-name": "c1"}


# --- Prometheus, GPU plugin, logs -------------------------------------------------------------------


def test_prometheus_is_only_a_server_on_its_node_scraping_api_pods_every_10s() -> None:
    values = addons.prometheus_values()
    for sub in ("alertmanager", "prometheus-pushgateway", "prometheus-node-exporter", "kube-state-metrics"):
        assert values[sub] == {"enabled": False}
    server = values["server"]
    assert (server["retention"], server["retentionSize"]) == ("7d", "20GB")
    assert server["persistentVolume"] == {"enabled": False}
    assert server["nodeSelector"] == addons.PROMETHEUS_NODE_LABELS
    assert server["tolerations"] == [
        {"key": addons.ROLE_LABEL, "operator": "Equal", "value": "prometheus", "effect": "NoSchedule"}
    ]
    # The pods with the Envoy sidecar and those without it (the serving runtime's metrics), alike.
    jobs = (envoy.prometheus_scrape_job(), envoy.runtime_scrape_job())
    assert values["scrapeConfigs"] == {job["job_name"]: {**job, "scrape_interval": "10s"} for job in jobs}
    assert list(values["scrapeConfigs"]) == ["cortex-envoy", "cortex-runtime"]


def test_nvidia_plugin_tolerates_the_gpu_taint_of_the_node_groups_and_keeps_the_charts_affinity() -> None:
    values = addons.nvidia_device_plugin_values()
    gpu_taint = karpenter.taints_for("g4dn.xlarge")[0]
    assert {"key": gpu_taint["key"], "operator": "Exists", "effect": gpu_taint["effect"]} in values["tolerations"]
    # Chart 0.20.0's default affinity admits nodes labelled nvidia.com/gpu.present: "true", which
    # the GPU node groups' pools put on their nodes.
    assert "affinity" not in values
    group = NodeGroupSpec.model_validate({"name": "gpu", "instance_type": "g4dn.xlarge"})
    for pool in karpenter.node_pools("c1", group).values():
        assert pool["spec"]["template"]["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"


def test_neuron_plugin_runs_only_the_device_plugin_on_the_inferentia_nodes() -> None:
    values = addons.neuron_device_plugin_values()
    group = NodeGroupSpec.model_validate({"name": "inf", "instance_type": "inf2.xlarge"})
    pool = karpenter.node_pool("c1", group)["spec"]["template"]
    plugin = values["devicePlugin"]
    assert plugin["enabled"] is True
    # Selected by the label the node groups put on Inferentia nodes, tolerating their taint.
    assert plugin["nodeSelector"] == {"aws.amazon.com/neuron.present": "true"}
    assert plugin["nodeSelector"].items() <= pool["metadata"]["labels"].items()
    (taint,) = pool["spec"]["taints"]
    assert plugin["tolerations"] == [{"key": taint["key"], "operator": "Exists", "effect": taint["effect"]}]
    # Every other component of the chart is named and off (chart 1.9.0's top-level keys).
    assert set(values) == {"devicePlugin", "scheduler", "npd", "draDriver", "ultraserverOperator"}
    assert all(values[key] == {"enabled": False} for key in set(values) - {"devicePlugin"})


def test_fluent_bit_writes_one_existing_log_group_from_every_node() -> None:
    values = addons.fluent_bit_values(REGION, "/cortex/c1")
    assert values["cloudWatchLogs"] == {
        "enabled": True, "region": REGION, "logGroupName": "/cortex/c1", "autoCreateGroup": False,
    }
    assert values["tolerations"] == [{"operator": "Exists"}]
    statement = addons.fluent_bit_policy(LOG_GROUP_ARN)["Statement"][0]
    assert statement["Resource"] == [LOG_GROUP_ARN, f"{LOG_GROUP_ARN}:*"]
    assert "logs:CreateLogGroup" not in statement["Action"]


def test_the_interceptor_rolls_without_cutting_held_requests() -> None:
    from cortex_iac.render.addons import keda_http_add_on_values
    from cortex_iac.specs.pod import MAX_REQUEST_TIMEOUT_SECONDS

    interceptor = keda_http_add_on_values()["interceptor"]
    assert interceptor["replicas"]["min"] >= 2
    assert interceptor["pdb"] == {"enabled": True, "minAvailable": 0, "maxUnavailable": 1}
    drain = int(interceptor["drainTimeout"].removesuffix("s"))
    delay = int(interceptor["shutdownDelay"].removesuffix("s"))
    assert drain > MAX_REQUEST_TIMEOUT_SECONDS  # a request held (or proxied) for the longest time still ends
    assert interceptor["terminationGracePeriodSeconds"] > delay + drain  # the kubelet waits for both
    assert interceptor["responseHeaderTimeout"] == f"{MAX_REQUEST_TIMEOUT_SECONDS}s"
