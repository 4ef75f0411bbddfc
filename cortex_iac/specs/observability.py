"""The stack's observability settings (``cortex:observability``): Grafana and Alertmanager.

Cortex had no such section (its dashboards were fixed, its alerting left to the user); these are
cortex_iac extensions. Per-API alert thresholds live in each API's ``alerts`` section
(:class:`cortex_iac.specs.api.AlertsSpec`); what the rules and dashboards are is in
docs/observability.md.

The receiver's URL or key is never a field here: it is the stack secret
:data:`ALERT_RECEIVER_SECRET_KEY` (``pulumi config set --secret``), which only ever reaches a
Kubernetes Secret that Alertmanager reads as a file, so it is in neither the plan nor the manifests.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from cortex_iac.specs.base import SpecModel, pattern

# The stack config key (namespace ``cortex``) holding the receiver's Slack webhook URL, PagerDuty
# routing key or webhook URL; it must be set with ``pulumi config set --secret``.
ALERT_RECEIVER_SECRET_KEY = "alertReceiverSecret"
# An ALB listener rule takes at most 5 match values in all and 3 per condition; the Grafana rule's
# path prefix takes 2 (the path and path/*), its source-IP condition holds the operator allow-list:
# at most this many CIDRs.
MAX_GRAFANA_SOURCE_CIDRS = 3

_PATH = re.compile(r"/[a-z0-9][a-z0-9\-]{0,40}")
_SLACK_CHANNEL = re.compile(r"#[a-z0-9][a-z0-9_\-]{0,79}")


class GrafanaSpec(SpecModel):
    """Grafana, with the cortex dashboards provisioned (docs/observability.md)."""

    enabled: bool = True
    """cortex_iac extension: install Grafana (the upstream chart) with Prometheus as its data source. Default true."""
    expose: Literal["port-forward", "load-balancer"] = "port-forward"
    """cortex_iac extension: how Grafana is reached. port-forward (default): only through `kubectl port-forward`;
    load-balancer: also on the shared API load balancer under `path`, for clients in the cluster's
    operator_load_balancer_cidr_white_list only (at most 3 CIDRs, an ALB rule's limit)."""
    path: Annotated[str, pattern(_PATH, "must be a path such as /grafana: '/' and a lowercase letter or digit, "
                                        "then up to 40 of a-z, 0-9 and '-'")] = "/grafana"
    """cortex_iac extension: the load balancer path Grafana is served under with expose: load-balancer.
    Default /grafana."""


class AlertingSpec(SpecModel):
    """Where Alertmanager sends the alerts of the rules (docs/observability.md)."""

    receiver: Literal["none", "slack", "pagerduty", "webhook"] = "none"
    """cortex_iac extension: the receiver of every alert. none (default): alerts show in Prometheus and
    Alertmanager only; slack, pagerduty or webhook: sent there, with the Slack webhook URL, PagerDuty
    routing key or webhook URL taken from the stack secret cortex:alertReceiverSecret."""
    slack_channel: Annotated[str, pattern(_SLACK_CHANNEL, "must be a Slack channel such as #alerts")] | None = None
    """cortex_iac extension: the Slack channel, with receiver: slack. Default: the webhook's own channel."""
    repeat_interval: Literal["1h", "4h", "12h", "24h"] = "4h"
    """cortex_iac extension: how often an alert still firing is sent again: 1h, 4h (default), 12h or 24h."""


class ObservabilitySpec(SpecModel):
    """The stack's ``cortex:observability``: Grafana and alerting. Every key is optional."""

    grafana: GrafanaSpec = Field(default_factory=GrafanaSpec)
    """cortex_iac extension: Grafana. Every key is optional."""
    alerting: AlertingSpec = Field(default_factory=AlertingSpec)
    """cortex_iac extension: where alerts are sent. Every key is optional."""
