"""Defaults applied when keys are absent or null, independent of the reference files."""

from __future__ import annotations

from cortex_iac.specs import (
    AsyncApiSpec,
    BatchApiSpec,
    ClusterSpec,
    NodeGroupSpec,
    Quantity,
    RealtimeApiSpec,
    SpotConfig,
    load_apis,
    load_cluster,
)
from tests.specs.helpers import api, container


def test_minimal_cluster_defaults() -> None:
    spec = load_cluster({"region": "eu-west-1"})
    assert spec == ClusterSpec(
        cluster_name="cortex",
        region="eu-west-1",
        availability_zones=None,
        subnets=None,
        node_groups=[],
        subnet_visibility="public",
        nat_gateway="none",
        api_load_balancer_type="nlb",
        api_load_balancer_scheme="internet-facing",
        operator_load_balancer_scheme="internet-facing",
        api_load_balancer_cidr_white_list=["0.0.0.0/0"],
        operator_load_balancer_cidr_white_list=["0.0.0.0/0"],
        tags={},
        ssl_certificate_arn=None,
        iam_policy_arns=[],
        vpc_cidr="192.168.0.0/16",
        prometheus_instance_type="t3.medium",
    )


def test_null_keys_mean_default() -> None:
    spec = load_cluster({"region": "eu-west-1", "tags": None, "iam_policy_arns": None, "node_groups": None, "cluster_name": None})
    assert (spec.tags, spec.iam_policy_arns, spec.node_groups, spec.cluster_name) == ({}, [], [], "cortex")


def test_nat_gateway_defaults_to_single_for_private_subnets() -> None:
    assert load_cluster({"region": "eu-west-1", "subnet_visibility": "private"}).nat_gateway == "single"
    subnets = [{"availability_zone": f"eu-west-1{z}", "subnet_id": f"subnet-0000000{i}"} for i, z in enumerate("ab")]
    existing = load_cluster({"region": "eu-west-1", "subnet_visibility": "private", "subnets": subnets})
    assert existing.nat_gateway == "none"


def test_node_group_and_spot_defaults() -> None:
    group = load_cluster(
        {"region": "us-east-1", "node_groups": [{"name": "spot", "instance_type": "m5.large", "spot": True, "spot_config": {}}]}
    ).node_groups[0]
    assert group == NodeGroupSpec(
        name="spot",
        instance_type="m5.large",
        min_instances=1,
        max_instances=5,
        priority=1,
        instance_volume_size=50,
        instance_volume_type="gp3",
        instance_volume_iops=None,
        instance_volume_throughput=None,
        spot=True,
        spot_config=SpotConfig(
            instance_distribution=[],
            on_demand_base_capacity=0,
            on_demand_percentage_above_base_capacity=0,
            max_price=None,
            instance_pools=None,
        ),
    )


def test_api_defaults_fill_from_other_fields() -> None:
    (spec,) = load_apis([api(name="my-api", pod={"max_concurrency": 4, "containers": [container()]}, autoscaling={"min_replicas": 3})])
    assert isinstance(spec, RealtimeApiSpec)
    assert spec.autoscaling.init_replicas == 3
    assert spec.autoscaling.target_in_flight == 4.0
    assert spec.networking.endpoint == "/my-api"


def test_async_target_in_flight_defaults_to_max_concurrency() -> None:
    (spec,) = load_apis([api("AsyncAPI", pod={"max_concurrency": 7, "containers": [container()]})])
    assert isinstance(spec, AsyncApiSpec) and spec.autoscaling.target_in_flight == 7.0


def test_cpu_null_means_no_request_but_absent_means_200m() -> None:
    (spec,) = load_apis([api(pod={"containers": [container(compute={"cpu": None, "mem": None}), container(name="two")]})])
    first, second = spec.pod.containers  # type: ignore[union-attr]
    assert first.compute.cpu is None and first.compute.mem is None
    assert second.compute.cpu == Quantity.parse("200m")


def test_endpoint_and_probe_path_are_canonical() -> None:
    probe = {"http_get": {"port": 8080, "path": "healthz"}}
    (spec,) = load_apis([api(networking={"endpoint": "v1/predict/"}, pod={"containers": [container(liveness_probe=probe)]})])
    assert spec.networking.endpoint == "/v1/predict"
    assert spec.pod.containers[0].liveness_probe.http_get.path == "/healthz"  # type: ignore[union-attr]
    http_default = load_apis([api(pod={"containers": [container(liveness_probe={"http_get": {"port": 8080}})]})])[0]
    assert http_default.pod.containers[0].liveness_probe.http_get.path == "/"  # type: ignore[union-attr]


def test_update_strategy_numbers() -> None:
    (spec,) = load_apis([api(update_strategy={"max_surge": 0, "max_unavailable": "1"})])
    assert isinstance(spec, RealtimeApiSpec)
    assert (spec.update_strategy.max_surge, spec.update_strategy.max_unavailable) == (0, 1)


def test_handler_container_defaults() -> None:
    (spec,) = load_apis([api(pod={"containers": [{"name": "api", "handler": {"path": "handler.py"}}]})])
    handler = spec.pod.containers[0].handler  # type: ignore[union-attr]
    assert handler is not None and spec.pod.containers[0].image is None  # type: ignore[union-attr]
    assert handler.model_dump() == {
        "path": "handler.py",
        "config": {},
        "threads_per_process": 1,
        "max_batch_size": 1,
        "batch_interval": None,
        "python_requirements": [],
    }


def test_batch_with_handler_needs_no_command() -> None:
    # (A TaskAPI takes no handler: test_api_rules.py, "TaskAPI takes no handler".)
    (spec,) = load_apis([api("BatchAPI", pod={"containers": [{"name": "t", "handler": {"path": "sum.py"}}]})])
    assert isinstance(spec, BatchApiSpec) and spec.jobs.retention == 30 * 24 * 3600


def test_models_round_trip_through_plain_data() -> None:
    (spec,) = load_apis([api(pod={"containers": [container(compute={"cpu": None, "mem": "1.5Gi", "shm": "64Mi"})]})])
    assert RealtimeApiSpec.model_validate(spec.model_dump()) == spec
