"""Routing of RealtimeAPIs on the cluster's one shared API load balancer (pure; plain dicts).

Every API gets an ``Ingress`` of the ``cortex-api`` IngressClass, served by the AWS Load Balancer
Controller. The class's ``IngressClassParams`` put all Ingresses into one IngressGroup, so the whole
cluster has one Application Load Balancer, and carry everything that is the cluster's, not an
API's: scheme, CIDR allow-list, TLS certificate, HTTP->HTTPS redirect, IP targets. An API's
Ingress only says which path goes where.

- ``networking.endpoint`` is a path prefix. The ALB strips it before forwarding (a ``url-rewrite``
  transform), as Cortex's Istio VirtualService did: ``/<endpoint>/x`` reaches the model as ``/x``.
- ``min_replicas >= 1``: the path forwards to the API's Service (Envoy, port 8888).
- ``min_replicas == 0``: the path forwards to the KEDA HTTP add-on's interceptor, which holds the
  request while KEDA scales the API up from zero, then proxies it to the API's Service. The
  interceptor routes by host, so the ALB also rewrites the Host header to the API's own name
  (:func:`interceptor_host`). An Ingress may only name Services of its own namespace, so this
  Ingress lives in the interceptor's namespace (an IngressGroup spans namespaces).

Changing ``min_replicas`` between 0 and more moves the Ingress between the two namespaces: Pulumi
creates the new one, and deletes the old one at the end of the update, so for a while both rules
match the same path. :func:`group_order` makes the direct rule win that tie, whatever the namespaces
are called; the component orders the steps so the winning rule has a ready pod behind it (see
docs/design.md, "Scale-from-zero handover").

Why Ingress and not Gateway API: see docs/design.md, "Routing".
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cortex_iac.render.envoy import LISTEN_PORT, READINESS_PATH

if TYPE_CHECKING:
    from cortex_iac.specs import AsyncApiSpec, ClusterSpec, RealtimeApiSpec
    from cortex_iac.specs.api import _ApiBase

# The IngressClass (and its IngressClassParams) every API Ingress uses, and the IngressGroup, i.e.
# the one ALB, they all share.
INGRESS_CLASS = "cortex-api"
INGRESS_GROUP = "cortex-api"
ALB_CONTROLLER = "ingress.k8s.aws/alb"

# Where the KEDA HTTP add-on runs: the Cluster installs its chart (keda-add-ons-http) into this
# namespace; Service names and ports are the chart's defaults.
KEDA_NAMESPACE = "keda"
INTERCEPTOR_PROXY_SERVICE = "keda-add-ons-http-interceptor-proxy"
INTERCEPTOR_PROXY_PORT = 8080
# The interceptor's admin port (container port "admin") answers /readyz: the ALB's health check of
# the interceptor targets, whose proxy port answers only routed hosts.
INTERCEPTOR_ADMIN_PORT = 9090
INTERCEPTOR_READY_PATH = "/readyz"
EXTERNAL_SCALER_SERVICE = "keda-add-ons-http-external-scaler"
EXTERNAL_SCALER_PORT = 9090

# A request that arrives while an API is at zero replicas waits in the interceptor until a pod is
# ready, which can take minutes (Karpenter launches a node, the image is pulled, the model loads).
# The ALB closes a connection idle for longer than its idle timeout (60 s by default), so the shared
# ALB allows 5 minutes.
ALB_IDLE_TIMEOUT_SECONDS = 300

# The ALB's health check of every API target group. A newly registered target takes traffic after
# it passes one check, so the interval bounds how long a route switched to a new target group can
# find no healthy target (the scale-from-zero handover); the controller's default is 15 s. The
# timeout must be shorter than the interval.
HEALTH_CHECK_INTERVAL_SECONDS = 5
HEALTH_CHECK_TIMEOUT_SECONDS = 2

_ANNOTATION = "alb.ingress.kubernetes.io/"
_LABELS = {"app.kubernetes.io/part-of": "cortex", "app.kubernetes.io/managed-by": "cortex-iac"}


def endpoint_of(spec: _ApiBase) -> str:
    """The API's path prefix on the load balancer: ``networking.endpoint`` (the spec writes it with
    one leading and no trailing ``/``; it is never ``/`` alone)."""
    return spec.networking.endpoint


def interceptor_host(api_name: str, namespace: str) -> str:
    """The Host header the ALB gives requests of a scale-to-zero API, and its InterceptorRoute
    matches: ``<api>.<namespace>``, unique per API (the interceptor routes by host first)."""
    return f"{api_name}.{namespace}"


def ingress_name(api_name: str) -> str:
    """Name of an API's Ingress: the API's name (it lives in the interceptor's namespace for
    scale-to-zero APIs, where the prefix says whose it is)."""
    return api_name


def api_ingress(
    spec: RealtimeApiSpec,
    namespace: str,
    *,
    https: bool,
    deregistration_delay_seconds: int,
    labels: dict[str, str],
) -> dict[str, Any]:
    """The Ingress that routes ``networking.endpoint`` to the API (see the module docstring).

    ``https``: the cluster has a TLS certificate, so the API also listens on 443 (the
    IngressClassParams redirect 80 to 443). ``deregistration_delay_seconds``: how long the ALB lets
    requests to a deregistered pod finish; the pod's drain must fit in it.
    """
    if spec.autoscaling.min_replicas == 0:
        return service_ingress(
            spec.name, endpoint_of(spec), KEDA_NAMESPACE, INTERCEPTOR_PROXY_SERVICE, INTERCEPTOR_PROXY_PORT,
            https=https, deregistration_delay_seconds=deregistration_delay_seconds, labels=labels,
            health={"healthcheck-path": INTERCEPTOR_READY_PATH, "healthcheck-port": str(INTERCEPTOR_ADMIN_PORT)},
            host=interceptor_host(spec.name, namespace), through_interceptor=True,
        )
    return service_ingress(
        spec.name, endpoint_of(spec), namespace, spec.name, LISTEN_PORT, https=https,
        deregistration_delay_seconds=deregistration_delay_seconds, labels=labels,
        health={"healthcheck-path": READINESS_PATH},
    )


def gateway_ingress(
    spec: AsyncApiSpec,
    namespace: str,
    *,
    service: str,
    health_path: str,
    https: bool,
    deregistration_delay_seconds: int,
    labels: dict[str, str],
) -> dict[str, Any]:
    """The Ingress that routes an AsyncAPI's ``networking.endpoint`` to its gateway ``service``
    (port 8888, which always runs: no interceptor), rewritten as for a RealtimeAPI, so the gateway
    sees ``POST /`` and ``GET /<id>``; the ALB checks ``health_path``."""
    return service_ingress(spec.name, spec.networking.endpoint, namespace, service, LISTEN_PORT,
                           https=https, deregistration_delay_seconds=deregistration_delay_seconds,
                           labels=labels, health={"healthcheck-path": health_path})


def service_ingress(
    api_name: str,
    endpoint: str,
    namespace: str,
    service: str,
    port: int,
    *,
    https: bool,
    deregistration_delay_seconds: int,
    labels: dict[str, str],
    health: dict[str, str],
    host: str | None = None,
    strip: bool = True,
    through_interceptor: bool = False,
) -> dict[str, Any]:
    """The Ingress (named after the API, in ``namespace``) that routes the path prefix ``endpoint``
    to ``service``:``port`` on the shared ALB, the prefix stripped (``/<endpoint>/x`` -> ``/x``)
    unless ``strip`` is false (a job gateway serves under its endpoint itself), longer prefixes
    first (:func:`group_order`; ``through_interceptor`` loses a same-path tie), with the ALB health
    check ``health`` (annotation suffixes to values; checked every HEALTH_CHECK_INTERVAL_SECONDS)
    and, when ``host`` is given, the Host header rewritten to it (the interceptor routes by it).
    Every API kind served at an endpoint routes through here."""
    health = {
        **health,
        "healthcheck-interval-seconds": str(HEALTH_CHECK_INTERVAL_SECONDS),
        "healthcheck-timeout-seconds": str(HEALTH_CHECK_TIMEOUT_SECONDS),
    }
    transforms: list[dict[str, Any]] = [{
        "type": "url-rewrite",
        # Endpoints hold only letters, digits and _ - . /, of which only '.' means something in a regex.
        "urlRewriteConfig": {"rewrites": [{"regex": f"^{endpoint.replace('.', '[.]')}/?(.*)$", "replace": "/$1"}]},
    }] if strip else []
    if host is not None:
        transforms.append({
            "type": "host-header-rewrite",
            "hostHeaderRewriteConfig": {"rewrites": [{"regex": "^.*$", "replace": host}]},
        })
    listen_ports: list[dict[str, int]] = [{"HTTP": 80}] + ([{"HTTPS": 443}] if https else [])
    annotations = {
        _ANNOTATION + "listen-ports": json.dumps(listen_ports),
        _ANNOTATION + "group.order": str(group_order(endpoint, through_interceptor=through_interceptor)),
        _ANNOTATION + "target-group-attributes": f"deregistration_delay.timeout_seconds={deregistration_delay_seconds}",
        **{_ANNOTATION + k: v for k, v in health.items()},
    }
    if transforms:
        annotations[_ANNOTATION + f"transforms.{service}"] = json.dumps(transforms)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": ingress_name(api_name),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "ingressClassName": INGRESS_CLASS,
            "rules": [{"http": {"paths": [{
                "path": endpoint,
                "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": port}}},
            }]}}],
        },
    }


def group_order(endpoint: str, *, through_interceptor: bool) -> int:
    """The ``group.order`` of an API's Ingress: where its rule sits on the shared ALB (smaller first).

    Longer prefixes first: the ALB evaluates rules in order, and ``/a`` would shadow ``/a/b``. At
    the same depth the direct rule (to the API's pods) comes before the interceptor's: the two
    exist together only while ``min_replicas`` moves between 0 and more (one API, one path), and
    without this the tie would go to the lexically smaller ``namespace/name``, i.e. depend on what
    the API namespace is called. The controller accepts orders from -1000 to 1000: the one endpoint
    deeper than that allows (500 one-letter segments, the 1,000-character limit) gets -1000.
    """
    return max(-1000, -2 * _depth(endpoint) + (0 if through_interceptor else -1))


def _depth(endpoint: str) -> int:
    return len([part for part in endpoint.split("/") if part])


def ingress_class_objects(
    cluster: ClusterSpec, api_namespace: str, *, extra_namespaces: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The cluster-wide ``IngressClassParams`` and ``IngressClass`` every API Ingress uses.

    From the cluster spec: ``api_load_balancer_scheme`` -> scheme, ``api_load_balancer_cidr_white_list``
    -> inbound CIDRs, ``ssl_certificate_arn`` -> the HTTPS certificate (and an HTTP->HTTPS redirect),
    ``tags`` + ``cortex.dev/cluster-name`` -> tags of the ALB and its target groups. Only Ingresses in
    ``api_namespace`` and in the KEDA namespace may join (any other namespace's Ingress naming this
    class is refused by the controller), because the group shares one ALB; ``extra_namespaces`` are
    admitted too (Grafana's, when it is served on the ALB: render/observability/addons.py).
    ``api_load_balancer_type`` is not used: path routing needs an ALB (see docs/design.md).
    """
    tags = {**cluster.tags, "cortex.dev/cluster-name": cluster.cluster_name}
    params: dict[str, Any] = {
        "group": {"name": INGRESS_GROUP},
        "scheme": cluster.api_load_balancer_scheme,
        "inboundCIDRs": list(cluster.api_load_balancer_cidr_white_list),
        "targetType": "ip",
        "namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted({api_namespace, KEDA_NAMESPACE, *extra_namespaces}),
        }]},
        "loadBalancerAttributes": [{"key": "idle_timeout.timeout_seconds", "value": str(ALB_IDLE_TIMEOUT_SECONDS)}],
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
    }
    if cluster.ssl_certificate_arn:
        params["certificateArn"] = [cluster.ssl_certificate_arn]
        params["sslRedirectPort"] = "443"
    return [
        {
            "apiVersion": "elbv2.k8s.aws/v1beta1",
            "kind": "IngressClassParams",
            "metadata": {"name": INGRESS_CLASS, "labels": dict(_LABELS)},
            "spec": params,
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": INGRESS_CLASS, "labels": dict(_LABELS)},
            "spec": {
                "controller": ALB_CONTROLLER,
                "parameters": {"apiGroup": "elbv2.k8s.aws", "kind": "IngressClassParams", "name": INGRESS_CLASS},
            },
        },
    ]


def api_url(hostname: str, endpoint: str, *, https: bool) -> str:
    """The URL an API answers at, from the shared ALB's DNS name and the API's endpoint."""
    return f"{'https' if https else 'http'}://{hostname}{endpoint}"
