"""The Cortex reference specs load unchanged, with the defaults SCHEMA.md and Cortex's docs give."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from cortex_iac.specs import (
    AsyncApiSpec,
    BatchApiSpec,
    Quantity,
    RealtimeApiSpec,
    TaskApiSpec,
    TrafficSplitterSpec,
    load_apis,
    load_cluster,
)
from tests.specs.helpers import API_FILES, REFERENCE, requires_reference

pytestmark = requires_reference


def _only(name: str) -> RealtimeApiSpec:
    (spec,) = load_apis(REFERENCE / "apis" / name)
    assert isinstance(spec, RealtimeApiSpec)
    return spec


@pytest.mark.parametrize("path", API_FILES, ids=lambda path: path.name)
def test_every_reference_api_file_loads(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    from_file = load_apis(path)
    from_data = load_apis(data, origin=f"{path.name} (parsed)")
    assert [(spec.kind, spec.name) for spec in from_file] == [(item["kind"], item["name"]) for item in data]
    assert from_file == from_data


def test_reference_set_is_complete() -> None:
    assert len(API_FILES) == 20


def test_realtime_defaults() -> None:
    spec = _only("realtime__hello-world__cortex_cpu.yaml")
    assert spec.model_dump() == {
        "name": "hello-world",
        "kind": "RealtimeAPI",
        "networking": {"endpoint": "/hello-world"},
        "pod": {
            "port": 8080,
            "max_concurrency": 1,
            "max_queue_length": 100,
            "request_timeout": 60,
            "containers": [
                {
                    "name": "api",
                    "image": "quay.io/cortexlabs-test/realtime-hello-world-cpu:latest",
                    "handler": None,
                    "command": None,
                    "args": None,
                    "env": {},
                    "compute": {"cpu": "200m", "mem": "128Mi", "gpu": 0, "inf": 0, "shm": None},
                    "readiness_probe": {
                        "http_get": {"path": "/healthz", "port": 8080},
                        "tcp_socket": None,
                        "exec": None,
                        "initial_delay_seconds": 0,
                        "timeout_seconds": 1,
                        "period_seconds": 10,
                        "success_threshold": 1,
                        "failure_threshold": 3,
                    },
                    "liveness_probe": None,
                    "pre_stop": None,
                }
            ],
        },
        "node_groups": None,
        "iam": {"s3_read": [], "s3_write": []},
        "autoscaling": {
            "min_replicas": 1,
            "max_replicas": 100,
            "init_replicas": 1,
            "target_in_flight": 1.0,
            "window": 60,
            "downscale_stabilization_period": 300,
            "upscale_stabilization_period": 60,
            "max_downscale_factor": 0.75,
            "max_upscale_factor": 1.5,
            "downscale_tolerance": 0.05,
            "upscale_tolerance": 0.05,
        },
        "update_strategy": {"max_surge": "25%", "max_unavailable": "25%"},
        "alerts": {"enabled": True, "error_ratio": 0.05, "latency_fraction": 0.8, "queue_full_ratio": 0.01},
    }
    compute = spec.pod.containers[0].compute
    assert compute.cpu == Quantity.parse("200m") and compute.cpu.value == Decimal("0.2")
    assert compute.mem is not None and compute.mem.value == 128 * 2**20


def test_scale_to_zero_values() -> None:
    spec = _only("realtime__hello-world__cortex_scale_to_zero.yaml")
    assert (spec.autoscaling.min_replicas, spec.autoscaling.max_replicas, spec.autoscaling.init_replicas) == (0, 1, 0)
    assert spec.autoscaling.downscale_stabilization_period == 30
    assert spec.pod.max_queue_length == 999
    probe = spec.pod.containers[0].readiness_probe
    assert probe is not None and probe.timeout_seconds == 3 and probe.period_seconds == 10


def test_target_in_flight_defaults_to_max_concurrency() -> None:
    assert _only("realtime__image-classifier-resnet50__cortex_cpu.yaml").autoscaling.target_in_flight == 8.0
    assert _only("realtime__sleep__cortex_cpu.yaml").autoscaling.target_in_flight == 1.0


def test_exec_probe_port_and_quantities() -> None:
    spec = _only("realtime__image-classifier-resnet50__cortex_cpu.yaml")
    probe = spec.pod.containers[0].readiness_probe
    assert spec.pod.port == 8501
    assert probe is not None and probe.exec is not None
    assert probe.exec.command == ["tfs_model_status_probe", "-addr", "localhost:8500", "-model-name", "resnet50"]
    assert str(spec.pod.containers[0].compute.cpu) == "1"
    multi = _only("realtime__multi-container__cortex_cpu.yaml")
    assert [c.name for c in multi.pod.containers] == ["web-server", "tfs-server"]
    assert multi.pod.containers[0].compute.cpu == Quantity.parse("200m")
    assert multi.pod.containers[1].compute.mem == Quantity.parse("2G")
    assert str(_only("realtime__text-generator__cortex_cpu.yaml").pod.containers[0].compute.mem) == "2560Mi"


def test_inferentia_containers() -> None:
    spec = _only("realtime__image-classifier-resnet50__cortex_inf_rtd.yaml")
    server, rtd = spec.pod.containers
    assert server.compute.inf == 0 and rtd.compute.inf == 1 and rtd.compute.gpu == 0
    assert server.command == ["/usr/local/bin/tensorflow_model_server_neuron"]
    assert server.args is not None and server.args[0] == "--port=8500"
    assert server.env["S3_USE_HTTPS"] == "1" and rtd.env == {"NEURON_RTD_ADDRESS": "unix:/mnt/neuron.sock"}
    assert server.readiness_probe is None


def test_async_batch_task_kinds() -> None:
    (hello,) = load_apis(REFERENCE / "apis" / "async__hello-world__cortex_cpu.yaml")
    assert isinstance(hello, AsyncApiSpec)
    assert hello.pod.max_concurrency == 1 and hello.autoscaling.target_in_flight == 1.0
    (gpu,) = load_apis(REFERENCE / "apis" / "async__text-generator__cortex_gpu.yaml")
    assert isinstance(gpu, AsyncApiSpec) and gpu.pod.containers[0].compute.gpu == 1
    (batch,) = load_apis(REFERENCE / "apis" / "batch__sum__cortex_cpu.yaml")
    assert isinstance(batch, BatchApiSpec)
    assert batch.pod.containers[0].command is not None and batch.pod.containers[0].command[-1] == "main:app"
    assert not hasattr(batch, "autoscaling") and batch.networking.endpoint == "/sum"
    (task,) = load_apis(REFERENCE / "apis" / "task__iris-classifier-trainer__cortex_cpu.yaml")
    assert isinstance(task, TaskApiSpec) and task.pod.containers[0].command == ["python", "main.py"]


def test_traffic_splitter() -> None:
    *apis, splitter = load_apis(REFERENCE / "apis" / "trafficsplitter__hello-world__cortex_cpu.yaml")
    assert [api.name for api in apis] == ["hello-world-a", "hello-world-b", "hello-world-shadow"]
    assert isinstance(splitter, TrafficSplitterSpec)
    assert [(t.name, t.weight, t.shadow) for t in splitter.apis] == [
        ("hello-world-a", 30, False),
        ("hello-world-b", 70, False),
        ("hello-world-shadow", 100, True),
    ]
    assert splitter.networking.endpoint == "/hello-world"


def test_reference_cluster_loads_with_nulls_meaning_default() -> None:
    spec = load_cluster(REFERENCE / "cluster.yaml")
    assert spec.model_dump() == {
        "cluster_name": "cortex",
        "region": "us-east-1",
        "availability_zones": None,
        "subnets": None,
        "node_groups": [
            {
                "name": "ng-cpu",
                "instance_type": "m5.large",
                "min_instances": 1,
                "max_instances": 5,
                "priority": 1,
                "instance_volume_size": 50,
                "instance_volume_type": "gp3",
                "instance_volume_iops": None,
                "instance_volume_throughput": None,
                "spot": False,
                "spot_config": None,
            },
            {
                "name": "ng-gpu",
                "instance_type": "g4dn.xlarge",
                "min_instances": 1,
                "max_instances": 5,
                "priority": 1,
                "instance_volume_size": 50,
                "instance_volume_type": "gp3",
                "instance_volume_iops": None,
                "instance_volume_throughput": None,
                "spot": False,
                "spot_config": None,
            },
        ],
        "subnet_visibility": "public",
        "nat_gateway": "none",
        "api_load_balancer_type": "nlb",
        "api_load_balancer_scheme": "internet-facing",
        "operator_load_balancer_scheme": "internet-facing",
        "api_load_balancer_cidr_white_list": ["0.0.0.0/0"],
        "operator_load_balancer_cidr_white_list": ["0.0.0.0/0"],
        "tags": {},
        "ssl_certificate_arn": None,
        "iam_policy_arns": ["arn:aws:iam::aws:policy/AmazonS3FullAccess"],
        "vpc_cidr": "192.168.0.0/16",
        "prometheus_instance_type": "t3.medium",
        "api_egress_cidrs": ["0.0.0.0/0", "::/0"],
    }
