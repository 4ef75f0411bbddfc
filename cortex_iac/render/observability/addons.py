"""Values and objects of the observability add-ons: Grafana, Alertmanager, the DCGM exporter, and
the ConfigMaps of the rules and dashboards.

Secrets never pass through here as values: the Grafana admin password and the alert receiver's URL
or key are Pulumi secrets that the components put in Kubernetes Secrets, which the charts read by
name (:data:`GRAFANA_ADMIN_SECRET`, :data:`ALERT_RECEIVER_SECRET`). Helm values, plan.json and the
rendered manifests name the Secrets and the files they are mounted as, never their contents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cortex_iac.render.karpenter import GPU_RESOURCE, accelerator_label
from cortex_iac.render.observability.rules import API_RULES_LABEL, api_rules_file_name
from cortex_iac.specs import CLUSTER_NAME_TAG
from cortex_iac.specs.observability import AlertingSpec, GrafanaSpec

GRAFANA_RELEASE = "grafana"
DCGM_EXPORTER_RELEASE = "dcgm-exporter"
# The Grafana Service the chart names after the release (port 80).
GRAFANA_SERVICE = GRAFANA_RELEASE
GRAFANA_PORT = 80
# Secrets the components make (in the Prometheus namespace, where Grafana and Alertmanager run).
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_USER_KEY = "admin-user"
GRAFANA_ADMIN_PASSWORD_KEY = "admin-password"
GRAFANA_ADMIN_USER = "admin"
ALERT_RECEIVER_SECRET = "cortex-alert-receiver"
ALERT_RECEIVER_SECRET_KEY = "receiver"
# Where Alertmanager sees the receiver Secret (the chart's extraSecretMounts).
ALERT_RECEIVER_DIR = "/etc/alertmanager/cortex-receiver"
ALERT_RECEIVER_FILE = f"{ALERT_RECEIVER_DIR}/{ALERT_RECEIVER_SECRET_KEY}"
# The label the Grafana chart's dashboard sidecar collects ConfigMaps by, and the data source uid
# every panel names.
DASHBOARD_LABEL = "grafana_dashboard"
DATASOURCE_UID = "prometheus"
# DCGM exporter's port (the chart's service.port).
DCGM_PORT = 9400
# How alerts are grouped and how soon the first of a group is sent.
ALERT_GROUP_BY = ("alertname", "namespace", "api", "node_group")

_LABELS = {"app.kubernetes.io/part-of": "cortex", "app.kubernetes.io/managed-by": "cortex-iac"}


def grafana_values(prometheus_url: str, spec: GrafanaSpec, placement: Mapping[str, Any]) -> dict[str, Any]:
    """Values of the ``grafana`` chart.

    Admin credentials from :data:`GRAFANA_ADMIN_SECRET` (made by the Cluster from a generated
    password), Prometheus as the only, default data source (uid :data:`DATASOURCE_UID`), the
    dashboard sidecar collecting ConfigMaps labelled :data:`DASHBOARD_LABEL` in Grafana's own
    namespace, read-only (provisioned dashboards cannot be edited in place: the ConfigMaps are the
    source). No persistence (no EBS CSI driver): dashboards come back from the ConfigMaps on restart,
    users and preferences do not. No sign-up, no anonymous access, no phoning home. With
    ``expose: load-balancer`` Grafana serves under ``spec.path``.
    """
    server: dict[str, Any] = {}
    if spec.expose == "load-balancer":
        server = {"root_url": f"%(protocol)s://%(domain)s{spec.path}/", "serve_from_sub_path": True}
    ini: dict[str, Any] = {
        "analytics": {"reporting_enabled": False, "check_for_updates": False, "check_for_plugin_updates": False},
        "users": {"allow_sign_up": False},
        "auth.anonymous": {"enabled": False},
    }
    if server:
        ini["server"] = server
    return {
        "admin": {
            "existingSecret": GRAFANA_ADMIN_SECRET,
            "userKey": GRAFANA_ADMIN_USER_KEY,
            "passwordKey": GRAFANA_ADMIN_PASSWORD_KEY,
        },
        "datasources": {"datasources.yaml": {"apiVersion": 1, "datasources": [{
            "name": "Prometheus", "type": "prometheus", "uid": DATASOURCE_UID, "url": prometheus_url,
            "access": "proxy", "isDefault": True, "editable": False,
        }]}},
        "sidecar": {"dashboards": {
            "enabled": True, "label": DASHBOARD_LABEL, "labelValue": "1",
            "provider": {"allowUiUpdates": False, "disableDelete": False},
        }},
        "grafana.ini": ini,
        "persistence": {"enabled": False},
        "testFramework": {"enabled": False},
        **placement,
    }


def grafana_admin_secret(namespace: str, cluster_name: str) -> dict[str, Any]:
    """The admin Secret's metadata and its non-secret key (the user); the password key is set by
    the component from a generated password (``stringData``, a Pulumi secret)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": GRAFANA_ADMIN_SECRET, "namespace": namespace,
                     "labels": {**_LABELS, CLUSTER_NAME_TAG: cluster_name}},
        "type": "Opaque",
        "stringData": {GRAFANA_ADMIN_USER_KEY: GRAFANA_ADMIN_USER},
    }


def alert_receiver_secret(namespace: str, cluster_name: str) -> dict[str, Any]:
    """The receiver Secret without its data (the component adds it from the stack secret)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": ALERT_RECEIVER_SECRET, "namespace": namespace,
                     "labels": {**_LABELS, CLUSTER_NAME_TAG: cluster_name}},
        "type": "Opaque",
    }


def alertmanager_config(spec: AlertingSpec) -> dict[str, Any]:
    """Alertmanager's configuration: one route to one receiver, the secret part read from
    :data:`ALERT_RECEIVER_FILE` (``api_url_file``, ``routing_key_file``, ``url_file``).

    ``receiver: none`` gives a receiver that sends nothing: alerts still show in Alertmanager's UI
    and Prometheus. Resolved alerts are sent too; ``page`` alerts are not repeated more slowly
    than ``warning`` ones (one route, ``repeat_interval`` from the spec).
    """
    receiver: dict[str, Any] = {"name": "cortex"}
    if spec.receiver == "slack":
        slack: dict[str, Any] = {"api_url_file": ALERT_RECEIVER_FILE, "send_resolved": True,
                                 "title": '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}',
                                 "text": "{{ range .Alerts }}{{ .Annotations.summary }}: {{ .Annotations.description }}\n{{ end }}"}
        if spec.slack_channel is not None:
            slack["channel"] = spec.slack_channel
        receiver["slack_configs"] = [slack]
    elif spec.receiver == "pagerduty":
        receiver["pagerduty_configs"] = [{"routing_key_file": ALERT_RECEIVER_FILE, "send_resolved": True}]
    elif spec.receiver == "webhook":
        receiver["webhook_configs"] = [{"url_file": ALERT_RECEIVER_FILE, "send_resolved": True}]
    return {
        "route": {
            "receiver": "cortex",
            "group_by": list(ALERT_GROUP_BY),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": spec.repeat_interval,
        },
        "receivers": [receiver],
    }


def alertmanager_values(spec: AlertingSpec, placement: Mapping[str, Any]) -> dict[str, Any]:
    """Values of the ``prometheus`` chart's ``alertmanager`` sub-chart: :func:`alertmanager_config`,
    the receiver Secret mounted (when there is a receiver), no volume (no EBS CSI driver: silences
    and notification state are lost on restart), on the system nodes."""
    values: dict[str, Any] = {
        "enabled": True,
        "config": alertmanager_config(spec),
        "persistence": {"enabled": False},
        **placement,
    }
    if spec.receiver != "none":
        values["extraSecretMounts"] = [{"name": "cortex-receiver", "mountPath": ALERT_RECEIVER_DIR, "subPath": "",
                                        "secretName": ALERT_RECEIVER_SECRET, "readOnly": True}]
    return values


def dcgm_exporter_values() -> dict[str, Any]:
    """Values of NVIDIA's ``dcgm-exporter`` chart: on GPU nodes only, scraped by annotation.

    Nodes of GPU node groups carry ``nvidia.com/gpu.present: "true"`` and the GPU taint
    (render/karpenter.py), which the DaemonSet selects and tolerates. Its Service carries the
    ``prometheus.io/scrape`` annotation, so the chart's ``kubernetes-service-endpoints`` job scrapes
    it (with honor_labels, so the ``namespace``/``pod`` labels of the pod using each GPU stay); no
    ServiceMonitor (no Prometheus operator).
    """
    return {
        "nodeSelector": {accelerator_label(GPU_RESOURCE): "true"},
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "serviceMonitor": {"enabled": False},
        "service": {"annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(DCGM_PORT)}},
    }


def dashboard_config_map(name: str, dashboard: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """A ConfigMap of one dashboard for the Grafana sidecar (label :data:`DASHBOARD_LABEL`)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cortex-dashboard-{name}", "namespace": namespace,
                     "labels": {**_LABELS, DASHBOARD_LABEL: "1"}},
        "data": {f"cortex-{name}.json": json.dumps(dashboard, indent=1, sort_keys=True)},
    }


def api_rules_config_map(api_name: str, rules: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """The ConfigMap of one API's rule file (:func:`~cortex_iac.render.observability.rules.api_rules`),
    labelled :data:`~cortex_iac.render.observability.rules.API_RULES_LABEL` for the Prometheus
    server's rules sidecar.

    Named ``cortex-rules-<api>-<hash of the file>``: changed thresholds are a new ConfigMap, made
    before the old one goes, so the API's rules never disappear (an alert's ``for`` would restart);
    the sidecar writes each under a name of its own (``UNIQUE_FILENAMES``), so removing the old one
    leaves the new one's file. Adding an API only adds its ConfigMap.
    """
    from cortex_iac import _yaml
    from cortex_iac.render.workload import sha256

    text = _yaml.dump(dict(rules))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cortex-rules-{api_name}-{sha256(text)[:10]}", "namespace": namespace,
                     "labels": {**_LABELS, API_RULES_LABEL: "1"}},
        "data": {api_rules_file_name(api_name): text},
    }


def grafana_ingress(spec: GrafanaSpec, namespace: str, source_cidrs: tuple[str, ...], *, https: bool) -> dict[str, Any]:
    """The Ingress serving Grafana on the shared API load balancer under ``spec.path``.

    It joins the API IngressGroup (its class, whose params admit ``namespace`` then), and its ALB
    rule also requires the client's address to be in ``source_cidrs`` (the cluster's
    ``operator_load_balancer_cidr_white_list``, at most 3: the spec checks it): a client must be
    admitted by the ALB's security group (the API allow-list) *and* by this rule; others get the
    ALB's 404. Health-checked on Grafana's own ``/api/health``.
    """
    from cortex_iac.render.routing import INGRESS_CLASS

    annotation = "alb.ingress.kubernetes.io/"
    listen: list[dict[str, int]] = [{"HTTP": 80}] + ([{"HTTPS": 443}] if https else [])
    condition = [{"field": "source-ip", "sourceIpConfig": {"values": list(source_cidrs)}}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": GRAFANA_RELEASE,
            "namespace": namespace,
            "labels": dict(_LABELS),
            "annotations": {
                annotation + "listen-ports": json.dumps(listen),
                annotation + "group.order": "-1",
                annotation + "healthcheck-path": f"{spec.path}/api/health",
                annotation + f"conditions.{GRAFANA_SERVICE}": json.dumps(condition),
            },
        },
        "spec": {
            "ingressClassName": INGRESS_CLASS,
            "rules": [{"http": {"paths": [{
                "path": spec.path,
                "pathType": "Prefix",
                "backend": {"service": {"name": GRAFANA_SERVICE, "port": {"number": GRAFANA_PORT}}},
            }]}}],
        },
    }
