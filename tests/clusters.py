"""The small cluster.yaml the cluster layout and Cluster component tests start from (copy, never mutate)."""

from __future__ import annotations

from typing import Any

ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
BASE: dict[str, Any] = {
    "cluster_name": "demo",
    "region": "us-east-1",
    "availability_zones": ZONES,
    "tags": {"team": "ml"},
    "node_groups": [
        {"name": "cpu", "instance_type": "m5.large"},
        {"name": "gpu", "instance_type": "g4dn.xlarge", "min_instances": 0},
    ],
}
