"""Cortex v0.42 cluster and API specs as pydantic models, and loading them with clear errors.

No Pulumi here: the models are plain data, used by `render/`, `components/`, the CLI and tests.
"""

from __future__ import annotations

from cortex_iac.specs.api import (
    API_KINDS,
    ApiSpec,
    AsyncApiSpec,
    AutoscalingSpec,
    BatchApiSpec,
    IamSpec,
    JobsSpec,
    NetworkingSpec,
    RealtimeApiSpec,
    TaskApiSpec,
    TrafficSplitTarget,
    TrafficSplitterSpec,
    UpdateStrategySpec,
    WorkloadSpec,
)
from cortex_iac.specs.base import RESERVED_PORTS
from cortex_iac.specs.cluster import CLUSTER_NAME_TAG, ClusterSpec, NodeGroupSpec, SpotConfig, SubnetSpec
from cortex_iac.specs.duration import parse_duration
from cortex_iac.specs.loader import detect_spec_kind, load_api_files, load_apis, load_cluster, read_handler_sources
from cortex_iac.specs.pod import (
    RESERVED_CONTAINER_NAMES,
    ComputeSpec,
    ContainerSpec,
    ExecSpec,
    HandlerSpec,
    HttpGetSpec,
    PodSpec,
    PreStopSpec,
    ProbeSpec,
    TcpSocketSpec,
)
from cortex_iac.specs.quantity import Quantity

__all__ = [
    "API_KINDS",
    "CLUSTER_NAME_TAG",
    "RESERVED_CONTAINER_NAMES",
    "RESERVED_PORTS",
    "ApiSpec",
    "AsyncApiSpec",
    "AutoscalingSpec",
    "BatchApiSpec",
    "ClusterSpec",
    "ComputeSpec",
    "ContainerSpec",
    "ExecSpec",
    "HandlerSpec",
    "HttpGetSpec",
    "IamSpec",
    "JobsSpec",
    "NetworkingSpec",
    "NodeGroupSpec",
    "PodSpec",
    "PreStopSpec",
    "ProbeSpec",
    "Quantity",
    "RealtimeApiSpec",
    "SpotConfig",
    "SubnetSpec",
    "TaskApiSpec",
    "TcpSocketSpec",
    "TrafficSplitTarget",
    "TrafficSplitterSpec",
    "UpdateStrategySpec",
    "WorkloadSpec",
    "detect_spec_kind",
    "load_api_files",
    "load_apis",
    "load_cluster",
    "parse_duration",
    "read_handler_sources",
]
