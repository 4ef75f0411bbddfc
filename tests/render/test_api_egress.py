"""cluster.yaml's api_egress_cidrs: what the API pods may connect to beyond the platform's own paths."""

from __future__ import annotations

from typing import Any

import pytest

from cortex_iac.errors import SpecError
from cortex_iac.render.workload import network_policy
from cortex_iac.specs import load_cluster
from tests.kube import validate_all

BASE = {"cluster_name": "demo", "region": "us-east-1"}


def _fixed(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in policy["spec"]["egress"] if "ports" in rule]


def test_default_is_anywhere_as_before() -> None:
    assert load_cluster(dict(BASE), origin="t").api_egress_cidrs == ["0.0.0.0/0", "::/0"]
    policy = network_policy()
    assert policy["spec"]["egress"][-1] == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]}


def test_a_narrow_list_keeps_dns_pod_identity_and_the_platform_paths() -> None:
    spec = load_cluster({**BASE, "api_egress_cidrs": ["10.0.0.0/8", "52.216.0.0/15"]}, origin="t")
    policy = network_policy(egress_cidrs=spec.api_egress_cidrs)
    validate_all([policy])
    assert policy["spec"]["egress"][-1] == {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"ipBlock": {"cidr": "52.216.0.0/15"}}]}
    assert _fixed(policy) == _fixed(network_policy())
    targets = [(rule["to"][0], [p["port"] for p in rule["ports"]]) for rule in _fixed(policy)]
    assert targets == [
        ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}, [53, 53]),
        ({"ipBlock": {"cidr": "169.254.170.23/32"}}, [80]),
        ({"podSelector": {}}, [8888]),  # TrafficSplitter routers to the APIs' sidecars
        ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}, [8080]),  # and the interceptor
    ]


def test_empty_list_allows_only_the_platform_paths() -> None:
    spec = load_cluster({**BASE, "api_egress_cidrs": []}, origin="t")
    policy = network_policy(egress_cidrs=spec.api_egress_cidrs)
    validate_all([policy])
    assert policy["spec"]["egress"] == _fixed(policy)


@pytest.mark.parametrize("bad", ["10.0.0.0", "everywhere", "300.0.0.0/8"])
def test_a_bad_cidr_is_a_spec_error_naming_the_field(bad: str) -> None:
    with pytest.raises(SpecError) as e:
        load_cluster({**BASE, "api_egress_cidrs": ["10.0.0.0/8", bad]}, origin="cluster.yaml")
    assert "cluster.yaml: api_egress_cidrs[1]" in str(e.value) and "must be a CIDR block" in str(e.value)
