"""cortex_iac: Cortex-style autoscaling model APIs on AWS EKS, as Pulumi components.

The components import Pulumi and its providers, so they load on first use: the serving runtime
(``cortex_iac.serving``) runs inside API pods without any of them installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # What type checkers and editors see: the real classes (at run time they load on first use).
    from cortex_iac.components.async_api import AsyncApi
    from cortex_iac.components.batch_api import BatchApi
    from cortex_iac.components.cluster import Cluster
    from cortex_iac.components.handle import ClusterHandle
    from cortex_iac.components.node_group import NodeGroup
    from cortex_iac.components.realtime_api import RealtimeApi
    from cortex_iac.components.task_api import TaskApi
    from cortex_iac.components.traffic_splitter import TrafficSplitter
    from cortex_iac.errors import CortexError, PlanError, SpecError
    from cortex_iac.specs import (
        AsyncApiSpec,
        BatchApiSpec,
        ClusterSpec,
        NodeGroupSpec,
        RealtimeApiSpec,
        TaskApiSpec,
        TrafficSplitterSpec,
        load_api_files,
        load_apis,
        load_cluster,
    )

__all__ = [
    "Cluster",
    "NodeGroup",
    "RealtimeApi",
    "AsyncApi",
    "TrafficSplitter",
    "BatchApi",
    "TaskApi",
    "ClusterHandle",
    "ClusterSpec",
    "NodeGroupSpec",
    "RealtimeApiSpec",
    "AsyncApiSpec",
    "TrafficSplitterSpec",
    "BatchApiSpec",
    "TaskApiSpec",
    "load_cluster",
    "load_apis",
    "load_api_files",
    "CortexError",
    "SpecError",
    "PlanError",
]

_WHERE = {
    "Cluster": "cortex_iac.components.cluster",
    "NodeGroup": "cortex_iac.components.node_group",
    "RealtimeApi": "cortex_iac.components.realtime_api",
    "AsyncApi": "cortex_iac.components.async_api",
    "TrafficSplitter": "cortex_iac.components.traffic_splitter",
    "BatchApi": "cortex_iac.components.batch_api",
    "TaskApi": "cortex_iac.components.task_api",
    "ClusterHandle": "cortex_iac.components.handle",
    "ClusterSpec": "cortex_iac.specs",
    "NodeGroupSpec": "cortex_iac.specs",
    "RealtimeApiSpec": "cortex_iac.specs",
    "AsyncApiSpec": "cortex_iac.specs",
    "TrafficSplitterSpec": "cortex_iac.specs",
    "BatchApiSpec": "cortex_iac.specs",
    "TaskApiSpec": "cortex_iac.specs",
    "load_cluster": "cortex_iac.specs",
    "load_apis": "cortex_iac.specs",
    "load_api_files": "cortex_iac.specs",
    "CortexError": "cortex_iac.errors",
    "SpecError": "cortex_iac.errors",
    "PlanError": "cortex_iac.errors",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'cortex_iac' has no attribute {name!r}")
