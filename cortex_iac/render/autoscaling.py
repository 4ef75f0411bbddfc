"""Cortex's RealtimeAPI autoscaling as a KEDA ScaledObject (and, for scale-to-zero, an
InterceptorRoute of the KEDA HTTP add-on). Pure; plain dicts.

One ScaledObject per API Deployment (KEDA refuses a second one for the same workload). Its triggers:

- ``in-flight`` (always): Prometheus, :func:`cortex_iac.render.envoy.inflight_query` (the API's
  in-flight requests, processing + queued, averaged over ``window``), ``AverageValue`` with
  ``target_in_flight`` as the per-replica target. The HPA then computes
  ``ceil(avg / target_in_flight)`` replicas, Cortex's step 1.
- ``interceptor`` (only with ``min_replicas: 0``): the HTTP add-on's ``external-push`` scaler,
  reading the InterceptorRoute's live concurrency. It wakes the API from zero the moment a request
  is held by the interceptor (Prometheus has no samples while no pod runs). Its per-replica
  target is the pod's capacity, ``max_concurrency + max_queue_length``: never above what the
  in-flight trigger asks for in steady state, it only adds replicas when requests would otherwise
  be refused by the sidecars. The HPA takes the larger of the two recommendations.

The HPA ``behavior`` carries Cortex's step limits, stabilization windows and tolerances; where the
HPA's arithmetic differs from Cortex's, docs/design.md ("Autoscaling mapping") says how.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

from cortex_iac.render.envoy import LISTEN_PORT, inflight_query
from cortex_iac.render.routing import (
    EXTERNAL_SCALER_PORT,
    EXTERNAL_SCALER_SERVICE,
    KEDA_NAMESPACE,
    interceptor_host,
)
from cortex_iac.versions import KUBERNETES_VERSION

if TYPE_CHECKING:
    from cortex_iac.specs import RealtimeApiSpec
    from cortex_iac.specs.api import AutoscalingSpec

# The Prometheus server the Cluster installs (prometheus-community chart, release "prometheus" in
# namespace "prometheus"), which scrapes every API pod's Envoy.
PROMETHEUS_ADDRESS = "http://prometheus-server.prometheus.svc.cluster.local:80"

# Cortex's autoscaler ticked every 10 s and limited each tick's step. The HPA's step-limit policies
# use this period; the HPA itself re-evaluates every 15 s (kube-controller-manager's default sync
# period, which EKS keeps), so every evaluation may take one full step. KEDA's activation check
# (around zero replicas) runs at the same interval.
CORTEX_TICK_SECONDS = 10

# Per-direction HPA tolerance (feature HPAConfigurableTolerance) is alpha and off in Kubernetes 1.33
# and 1.34, where the API server drops the field; beta and on from 1.35.
HPA_TOLERANCE_SINCE = (1, 35)

IN_FLIGHT_TRIGGER = "in-flight"
INTERCEPTOR_TRIGGER = "interceptor"


def _decimal(value: float) -> Decimal:
    # Through str: 0.9 stays 0.9 instead of 0.90000000000000002220...
    return Decimal(str(value))


def _percent(fraction: Decimal) -> int:
    # Whole percent, rounded down so the HPA never moves faster than the spec allows; at least 1,
    # the smallest value the HPA accepts (the Pods policy of 1 covers the rest).
    return max(1, int((fraction * 100).to_integral_value(rounding=ROUND_FLOOR)))


def _plain_number(value: float) -> str:
    return format(_decimal(value).normalize(), "f")


def hpa_behavior(
    api_name: str, autoscaling: AutoscalingSpec, kubernetes_version: str = KUBERNETES_VERSION
) -> dict[str, Any]:
    """The HPA ``behavior`` implementing Cortex's steps 2, 3 and 5 (see SCHEMA.md).

    - ``max_upscale_factor`` f: up to ``max(cur + 1, ceil(cur * f))`` per evaluation -> a Percent
      policy of ``floor((f - 1) * 100)`` and a Pods policy of 1, ``selectPolicy: Max``.
    - ``max_downscale_factor`` f: down to ``min(cur - 1, ...)`` -> Percent ``floor((1 - f) * 100)``
      and Pods 1, ``selectPolicy: Max`` (the larger change).
    - ``upscale_stabilization_period`` / ``downscale_stabilization_period`` -> the windows.
    - ``upscale_tolerance`` / ``downscale_tolerance`` -> ``tolerance``, rendered only for
      ``kubernetes_version`` (default the pinned one) 1.35 and later: before, the cluster would drop
      it and apply its global 10 % (see docs/design.md).
    """
    with_tolerance = tuple(int(part) for part in kubernetes_version.split(".")[:2]) >= HPA_TOLERANCE_SINCE
    def rules(window: int, percent: int, tolerance: float) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "stabilizationWindowSeconds": window,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": percent, "periodSeconds": CORTEX_TICK_SECONDS},
                {"type": "Pods", "value": 1, "periodSeconds": CORTEX_TICK_SECONDS},
            ],
        }
        if with_tolerance:
            rule["tolerance"] = _plain_number(tolerance)
        return rule

    return {
        "scaleUp": rules(
            autoscaling.upscale_stabilization_period,
            _percent(_decimal(autoscaling.max_upscale_factor) - 1),
            autoscaling.upscale_tolerance,
        ),
        "scaleDown": rules(
            autoscaling.downscale_stabilization_period,
            _percent(1 - _decimal(autoscaling.max_downscale_factor)),
            autoscaling.downscale_tolerance,
        ),
    }


def scaled_object(
    spec: RealtimeApiSpec,
    namespace: str,
    *,
    labels: dict[str, str],
    prometheus_address: str = PROMETHEUS_ADDRESS,
) -> dict[str, Any]:
    """The API's ScaledObject (targets the Deployment named like the API); see the module docstring.

    ``prometheus_address`` defaults to :data:`PROMETHEUS_ADDRESS`.
    """
    a = spec.autoscaling
    triggers: list[dict[str, Any]] = [{
        "type": "prometheus",
        "name": IN_FLIGHT_TRIGGER,
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": prometheus_address,
            "query": inflight_query(namespace, spec.name, a.window),
            "threshold": _plain_number(a.target_in_flight),
            # No Envoy scraped (no pod yet) gives an empty result: that is 0 in flight, not an error.
            "ignoreNullValues": "true",
        },
    }]
    if a.min_replicas == 0:
        triggers.append({
            "type": "external-push",
            "name": INTERCEPTOR_TRIGGER,
            "metricType": "AverageValue",
            "metadata": {
                "scalerAddress": f"{EXTERNAL_SCALER_SERVICE}.{KEDA_NAMESPACE}:{EXTERNAL_SCALER_PORT}",
                "interceptorRoute": spec.name,
            },
        })
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "pollingInterval": CORTEX_TICK_SECONDS,
            # Time without any activity before 1 -> 0 (only used when min_replicas is 0).
            "cooldownPeriod": a.downscale_stabilization_period,
            "minReplicaCount": a.min_replicas,
            "maxReplicaCount": a.max_replicas,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": hpa_behavior(spec.name, a)}},
            "triggers": triggers,
        },
    }


def interceptor_route(spec: RealtimeApiSpec, namespace: str, *, labels: dict[str, str]) -> dict[str, Any]:
    """The InterceptorRoute of a scale-to-zero API (``min_replicas: 0``): requests whose Host is
    :func:`~cortex_iac.render.routing.interceptor_host` go to the API's Service (Envoy), held until
    a replica is ready; its concurrency feeds the ``interceptor`` trigger."""
    return {
        "apiVersion": "http.keda.sh/v1beta1",
        "kind": "InterceptorRoute",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": labels},
        "spec": {
            "target": {"service": spec.name, "port": LISTEN_PORT},
            "rules": [{"hosts": [interceptor_host(spec.name, namespace)]}],
            "scalingMetric": {"concurrency": {"targetValue": spec.pod.max_concurrency + spec.pod.max_queue_length}},
        },
    }
