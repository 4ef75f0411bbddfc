"""The Cluster's observability children under the recording engine, and what the plan shows of them.

The Grafana admin password and the alert receiver's URL must never be in plan.json or in the
manifests in clear: the password is generated (``random.RandomPassword``), the receiver URL comes
in as a Pulumi secret, and both only reach Kubernetes Secrets.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from cortex_iac.components.cluster import Cluster
from cortex_iac.components.observability import ApiRules
from cortex_iac.errors import CortexError
from cortex_iac.plan.engine import SECRET, Recording, record
from cortex_iac.plan.plan import dumps, kubernetes_objects, to_plan
from cortex_iac.render.observability.rules import API_RULES_LABEL
from cortex_iac.specs import RealtimeApiSpec, load_apis, load_cluster
from cortex_iac.specs.observability import ObservabilitySpec
from cortex_iac.versions import DCGM_EXPORTER_CHART, GRAFANA_CHART
from tests.kube import validate_all

RECEIVER_URL = "https://hooks.slack.example/services/T0/B0/very-secret-token"
CLUSTER = {
    "cluster_name": "obs-test", "region": "us-east-1",
    "node_groups": [{"name": "gpu", "instance_type": "g4dn.xlarge", "min_instances": 0, "max_instances": 2},
                    {"name": "cpu", "instance_type": "m5.large", "min_instances": 1, "max_instances": 4}],
}


def _program(observability: ObservabilitySpec, secret: str | None) -> Any:
    def program() -> None:
        spec = load_cluster(dict(CLUSTER))
        cluster = Cluster("obs", spec, observability=observability,
                          alert_receiver_secret=None if secret is None else pulumi.Output.secret(secret))
        (api,) = load_apis([{"name": "my-api", "kind": "RealtimeAPI",
                             "pod": {"containers": [{"name": "api", "image": "example.com/a:1"}]}}], origin="test")
        assert isinstance(api, RealtimeApiSpec)
        ApiRules("obs-apis", [api], cluster.handle)
    return program


@pytest.fixture(scope="module")
def slack() -> Recording:
    spec = ObservabilitySpec.model_validate({"alerting": {"receiver": "slack"}})
    return record(_program(spec, RECEIVER_URL), preview=True)


def test_neither_secret_is_in_the_plan_or_the_manifests(slack: Recording) -> None:
    plan_text = dumps(to_plan(slack))
    manifests = json.dumps(kubernetes_objects(slack))
    assert "very-secret-token" not in plan_text and "very-secret-token" not in manifests
    secrets = {r.name: r.inputs for r in slack.resources if r.type == "kubernetes:core/v1:Secret"}
    assert set(secrets) == {"obs-alert-receiver", "obs-grafana-admin"}
    assert secrets["obs-alert-receiver"]["stringData"] == SECRET
    assert secrets["obs-grafana-admin"]["stringData"] == SECRET
    (password,) = [r for r in slack.resources if r.type == "random:index/randomPassword:RandomPassword"]
    assert password.inputs["length"] == 32
    assert validate_all([o for o in kubernetes_objects(slack) if o.get("kind") in ("Secret", "ConfigMap")]) >= 4


def test_grafana_dashboards_and_dcgm_are_released(slack: Recording) -> None:
    releases = {r.inputs["name"]: r.inputs for r in slack.resources if r.type == "kubernetes:helm.sh/v3:Release"}
    grafana = releases["grafana"]
    assert (grafana["chart"], grafana["version"]) == (GRAFANA_CHART.chart, GRAFANA_CHART.version)
    assert grafana["repositoryOpts"] == {"repo": GRAFANA_CHART.repository}
    assert grafana["values"]["admin"]["existingSecret"] == "grafana-admin"
    assert releases["dcgm-exporter"]["version"] == DCGM_EXPORTER_CHART.version  # the cluster has a GPU group
    prometheus = releases["prometheus"]["values"]
    assert prometheus["alertmanager"]["config"]["receivers"][0]["slack_configs"][0]["api_url_file"].endswith("/receiver")
    groups = prometheus["serverFiles"]["recording_rules.yml"]["groups"]
    limits = {r["labels"]["node_group"]: r["expr"] for g in groups for r in g["rules"]
              if r.get("record") == "cortex:node_group_max_instances"}
    assert limits == {"gpu": "vector(2)", "cpu": "vector(4)"}
    maps = {r.inputs["metadata"]["name"]: r.inputs for r in slack.resources if r.type == "kubernetes:core/v1:ConfigMap"}
    assert {"cortex-dashboard-api", "cortex-dashboard-cluster"} <= set(maps)
    rules = [m for m in maps.values() if API_RULES_LABEL in m["metadata"]["labels"]]
    assert [list(m["data"]) for m in rules] == [["my-api.yml"]]
    assert rules[0]["metadata"]["namespace"] == "prometheus"


def test_grafana_can_be_switched_off_and_no_receiver_needs_no_secret() -> None:
    spec = ObservabilitySpec.model_validate({"grafana": {"enabled": False}})
    recording = record(_program(spec, None), preview=True)
    names = {r.inputs.get("name") for r in recording.resources if r.type == "kubernetes:helm.sh/v3:Release"}
    assert "grafana" not in names and "prometheus" in names
    assert not [r for r in recording.resources if r.type in ("kubernetes:core/v1:Secret",
                                                             "random:index/randomPassword:RandomPassword")]


def test_a_receiver_without_its_secret_is_refused() -> None:
    spec = ObservabilitySpec.model_validate({"alerting": {"receiver": "webhook"}})
    with pytest.raises(CortexError, match="alert_receiver_secret must be given"):
        record(_program(spec, None), preview=True)


def test_grafana_on_the_load_balancer_gets_an_ingress_in_the_api_group() -> None:
    spec = ObservabilitySpec.model_validate({"grafana": {"expose": "load-balancer"}})
    recording = record(_program(spec, None), preview=True)
    (ingress,) = [r for r in recording.resources if r.type == "kubernetes:networking.k8s.io/v1:Ingress"]
    assert ingress.inputs["metadata"]["namespace"] == "prometheus"
    (params,) = [r for r in recording.resources if r.type.endswith("IngressClassParams")]
    assert "prometheus" in params.inputs["spec"]["namespaceSelector"]["matchExpressions"][0]["values"]
    (grafana,) = [r for r in recording.resources if r.type == "kubernetes:helm.sh/v3:Release"
                  and r.inputs["name"] == "grafana"]
    assert grafana.inputs["values"]["grafana.ini"]["server"]["serve_from_sub_path"] is True
