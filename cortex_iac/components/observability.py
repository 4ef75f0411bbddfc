"""The APIs' side of observability: their rule files, in ConfigMaps the cluster's Prometheus collects.

The cluster's rules and dashboards are the Cluster's (they know no API); what each API adds is its
constants: its replica bounds, target, request timeout and alert thresholds, from its spec
(:func:`cortex_iac.render.observability.rules.api_rules`), one ConfigMap per API
(:func:`cortex_iac.render.observability.addons.api_rules_config_map`): adding an API adds one, an
API removed from the program loses its rules (and its alerts) with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from cortex_iac.components._kube import object_meta
from cortex_iac.components.handle import ClusterHandle
from cortex_iac.errors import CortexError
from cortex_iac.render.addons import PROMETHEUS_NAMESPACE, PROMETHEUS_RELEASE
from cortex_iac.render.observability.addons import api_rules_config_map
from cortex_iac.render.observability.rules import api_rules
from cortex_iac.render.workload import API_NAMESPACE
from cortex_iac.specs import RealtimeApiSpec


class ApiRules(pulumi.ComponentResource):
    """One rule ConfigMap per API in the Prometheus namespace.

    Args:
        name: component name; the ConfigMaps are ``<name>-<api>-rules``.
        apis: the program's RealtimeAPIs (names unique, as the deployment check ensures).
        cluster: the cluster's handle; its Prometheus must be installed.
        opts: resource options.
    """

    def __init__(
        self, name: str, apis: Sequence[RealtimeApiSpec], cluster: ClusterHandle,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if cluster.prometheus_url is None:
            raise CortexError(f"ApiRules {name!r}: the cluster has no Prometheus (addons.prometheus is off)")
        names = [api.name for api in apis]
        if len(set(names)) != len(names):
            raise CortexError(f"ApiRules {name!r}: API names must be unique, got {names}")
        super().__init__("cortex:observability:ApiRules", name, None, opts)
        namespace = cluster.api_namespace_name or API_NAMESPACE
        wait = [cluster.addon_releases[PROMETHEUS_RELEASE]] if PROMETHEUS_RELEASE in cluster.addon_releases else []
        self.config_maps: dict[str, k8s.core.v1.ConfigMap] = {}
        for api in apis:
            obj = api_rules_config_map(api.name, api_rules(api, namespace), PROMETHEUS_NAMESPACE)
            self.config_maps[api.name] = k8s.core.v1.ConfigMap(
                f"{name}-{api.name}-rules",
                metadata=object_meta(obj["metadata"]),
                data=obj["data"],
                opts=pulumi.ResourceOptions(parent=self, provider=cluster.k8s_provider, depends_on=wait),
            )
        self.register_outputs({"apis": names})
