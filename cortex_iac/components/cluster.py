"""``cortex:eks:Cluster``: a Cortex cluster (cluster.yaml) on EKS, with its network and add-ons."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from cortex_iac.components import addons as install
from cortex_iac.components._kube import custom_resource, object_meta
from cortex_iac.components.addons import AddonContext, AddonsArgs
from cortex_iac.components.handle import ClusterHandle
from cortex_iac.components.node_group import NodeGroup
from cortex_iac.errors import CortexError
from cortex_iac.instance_types import INSTANCE_TYPES
from cortex_iac.plan.cost import price_table
from cortex_iac.render import addons as render
from cortex_iac.render import routing
from cortex_iac.render.cluster_layout import (
    ADMIN_ACCESS_POLICY,
    API_SERVER_PORT,
    NODE_POLICIES,
    SYSTEM_INSTANCE_TYPE,
    SYSTEM_NODES,
    ApiServerSource,
    ClusterLayout,
    ManagedNodes,
    cluster_layout,
)
from cortex_iac.render.iam import aws_managed_policy_arn, service_trust_policy, to_json
from cortex_iac.render.karpenter import DISCOVERY_TAG
from cortex_iac.render.network import NetworkLayout, subnet_tags
from cortex_iac.render.observability import dashboards
from cortex_iac.render.observability.addons import grafana_ingress
from cortex_iac.render.observability.rules import cluster_rules
from cortex_iac.render.workload import API_NAMESPACE, network_policy
from cortex_iac.specs import ClusterSpec
from cortex_iac.specs.observability import ObservabilitySpec
from cortex_iac.versions import COREDNS_ADDON_VERSION, KUBERNETES_VERSION

__all__ = ["ADMIN_ACCESS_POLICY", "NODE_POLICIES", "SYSTEM_INSTANCE_TYPE", "SYSTEM_NODES", "Cluster"]


class Cluster(pulumi.ComponentResource):
    """A Cortex cluster: network, EKS control plane, system nodes, Karpenter node groups, add-ons.

    What is made is decided by :func:`cortex_iac.render.cluster_layout.cluster_layout` (a pure
    function of ``spec`` and ``addons``); this component only wires that layout into resources.

    - Network: a new VPC laid out by :func:`cortex_iac.render.network.network_layout` (public
      subnets, private ones with a NAT gateway, route tables, ELB and Karpenter discovery tags), or
      cluster.yaml's existing ``subnets`` (then ``vpc_id`` is required and no VPC is created; the
      subnets only get the ``karpenter.sh/discovery`` tag).
    - EKS (``pulumi_eks.Cluster``, Kubernetes :data:`~cortex_iac.versions.KUBERNETES_VERSION`):
      access entries only (authentication mode API), an IAM OIDC provider, secrets encrypted with a
      rotating KMS key, no default node group, no extra security groups (nodes use the EKS cluster
      security group). ``operator_load_balancer_scheme: internal`` makes the API server endpoint
      private only, open on 443 to the VPC (when made here) and to
      ``operator_load_balancer_cidr_white_list`` through ingress rules on the cluster security
      group, so Pulumi must run from one of those networks; otherwise the endpoint is public too,
      limited to ``operator_load_balancer_cidr_white_list``.
    - Nodes: :data:`SYSTEM_NODES` on-demand ``system_instance_type`` nodes (tainted
      ``CriticalAddonsOnly``) for the controllers, one node of ``prometheus_instance_type`` for
      Prometheus (EKS managed node groups of the same Kubernetes version), and one
      :class:`~cortex_iac.components.node_group.NodeGroup` (Karpenter) per cluster.yaml node group.
    - Add-ons, each switchable in ``addons`` (:class:`~cortex_iac.components.addons.AddonsArgs`).
    - Tags: every AWS resource gets cluster.yaml's ``tags`` plus ``cortex.dev/cluster-name``, set on
      each resource rather than as provider default tags, so they show in every plan and hold with
      whatever AWS provider the program uses.

    No AWS lookup is made and no global config is read: the region comes from the spec (the AWS
    provider must be configured for the same region; the stack program checks ``aws:region``),
    ARNs from other resources' outputs.

    Args:
        name: component name; children are named ``<name>-...``.
        spec: the cluster (cluster.yaml); ``spec.cluster_name`` names the EKS cluster.
        addons: add-on switches (default: all on).
        vpc_id: the VPC of ``spec.subnets``; required with them, refused without.
        admin_principal_arns: IAM roles or users given cluster-admin access entries (default none;
            the identity running Pulumi is admin already).
        system_instance_type: instance type of the system nodes (default :data:`SYSTEM_INSTANCE_TYPE`).
        observability: Grafana and alerting (the stack's ``cortex:observability``; default: Grafana
            on, alerts to no receiver). With Prometheus, the cluster's recording and alerting rules,
            Alertmanager, kube-state-metrics and the node exporter are always installed.
        alert_receiver_secret: the receiver's URL or key (a Pulumi secret), required exactly when
            ``observability.alerting.receiver`` is not none.
        opts: resource options.

    ``handle`` (a :class:`~cortex_iac.components.handle.ClusterHandle`) is what API components
    take: the read-only part of the cluster an API needs.

    Attributes (outputs): ``handle``, ``layout`` (the :class:`~cortex_iac.render.cluster_layout.ClusterLayout`),
    ``cluster_name``, ``kubeconfig`` (secret), ``oidc_provider_arn``,
    ``oidc_provider_url``, ``oidc_issuer``, ``k8s_provider``, ``node_role_name`` (Karpenter's, None
    without Karpenter), ``vpc_id``, ``load_balancer`` (:class:`~cortex_iac.render.addons.LoadBalancerSettings`,
    None without the load balancer controller), ``namespaces`` (role -> name), ``api_namespace``
    (the namespace's name as an output that waits for it), ``prometheus_url`` and
    ``keda_http_interceptor`` (None when off), ``iam_policy_arns`` (cluster.yaml's, for API roles),
    ``tags`` (of every AWS resource), ``node_group_specs``, ``node_groups`` (the components),
    ``addon_releases`` (by Helm release name, plus the API IngressClass: what API resources must
    wait for), ``pod_identity_agent``, ``keda_operator_role_arn`` (KEDA's own role, which
    AsyncAPI queue scalers trust; None without KEDA). All but ``handle`` are kept for programs that read them.
    """

    def __init__(
        self,
        name: str,
        spec: ClusterSpec,
        *,
        addons: AddonsArgs | None = None,
        vpc_id: str | None = None,
        admin_principal_arns: Sequence[str] = (),
        system_instance_type: str = SYSTEM_INSTANCE_TYPE,
        observability: ObservabilitySpec | None = None,
        alert_receiver_secret: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        _check_args(name, spec, vpc_id, system_instance_type)
        observability = observability or ObservabilitySpec()
        if (observability.alerting.receiver != "none") != (alert_receiver_secret is not None):
            raise CortexError(
                f"Cluster {name!r}: alert_receiver_secret must be given exactly when observability.alerting.receiver "
                f"is not 'none' (it is {observability.alerting.receiver!r})"
            )
        layout = cluster_layout(spec, addons or AddonsArgs(), system_instance_type=system_instance_type)
        super().__init__("cortex:eks:Cluster", name, None, opts)
        self.layout: ClusterLayout = layout
        cluster_name = layout.cluster_name
        tags = layout.tags
        child = pulumi.ResourceOptions(parent=self)

        # The control plane's subnets: the existing ones, or the new public (and private) ones.
        node_subnet_ids: list[pulumi.Input[str]]
        subnet_ids: list[pulumi.Input[str]] | None = None
        public_subnet_ids: list[pulumi.Output[str]] | None = None
        private_subnet_ids: list[pulumi.Output[str]] | None = None
        if layout.network is None:
            assert vpc_id is not None  # _check_args: required with existing subnets
            self.vpc_id: pulumi.Output[str] = pulumi.Output.from_input(vpc_id)
            egress: list[pulumi.Resource] = []
            node_subnet_ids = subnet_ids = list(layout.existing_subnet_ids)
            for subnet_id in layout.discovery_subnet_ids:
                aws.ec2.Tag(
                    f"{name}-{subnet_id}-discovery",
                    resource_id=subnet_id,
                    key=DISCOVERY_TAG,
                    value=cluster_name,
                    opts=child,
                )
        else:
            self.vpc_id, public, private, egress = self._network(name, cluster_name, layout.network, tags)
            node_subnet_ids = list(private if layout.network.nodes_in_private_subnets else public)
            public_subnet_ids, private_subnet_ids = public, private or None

        secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"Envelope encryption of Kubernetes secrets of EKS cluster {cluster_name}",
            enable_key_rotation=True,
            tags=tags,
            opts=child,
        )
        karpenter_node_role, karpenter_role_policies = (
            self._node_role(f"{name}-karpenter-node", "Karpenter nodes", cluster_name, tags)
            if layout.karpenter
            else (None, [])
        )
        system_node_role, system_role_policies = self._node_role(f"{name}-system-node", "system nodes", cluster_name, tags)

        access_entries = {
            f"admin-{index}": eks.AccessEntryArgs(
                principal_arn=arn,
                access_policies={
                    "cluster-admin": eks.AccessPolicyAssociationArgs(
                        policy_arn=ADMIN_ACCESS_POLICY,
                        access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    )
                },
            )
            for index, arn in enumerate(admin_principal_arns)
        }
        if karpenter_node_role is not None:
            access_entries["karpenter-nodes"] = eks.AccessEntryArgs(
                principal_arn=karpenter_node_role.arn, type=eks.AccessEntryType.EC2_LINUX
            )
        endpoint = layout.endpoint
        self.eks = eks.Cluster(
            f"{name}-eks",
            name=cluster_name,
            version=KUBERNETES_VERSION,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries=access_entries,
            create_oidc_provider=True,
            encryption_config_key_arn=secrets_key.arn,
            skip_default_node_group=True,
            skip_default_security_groups=True,
            endpoint_private_access=True,
            endpoint_public_access=endpoint.public,
            public_access_cidrs=None if endpoint.public_access_cidrs is None else list(endpoint.public_access_cidrs),
            vpc_id=self.vpc_id,
            subnet_ids=subnet_ids,
            public_subnet_ids=public_subnet_ids,
            private_subnet_ids=private_subnet_ids,
            tags=tags,
            # The VPC CNI's network policy agent, which enforces the API namespace's NetworkPolicy.
            vpc_cni_options=eks.VpcCniOptionsArgs(enable_network_policy=True),
            # Destroyed before the routes, so the controllers can still reach AWS while finalizing.
            opts=pulumi.ResourceOptions(parent=self, depends_on=egress),
        )
        after_eks = pulumi.ResourceOptions(parent=self, depends_on=[self.eks])
        api_server_rules = self._api_server_ingress(name, cluster_name, endpoint.ingress, tags)
        if layout.karpenter:
            # Karpenter's EC2NodeClasses find the EKS-made cluster security group by this tag.
            aws.ec2.Tag(
                f"{name}-cluster-security-group-discovery",
                resource_id=self.eks.cluster_security_group_id,
                key=DISCOVERY_TAG,
                value=cluster_name,
                opts=child,
            )
        node_waits: list[pulumi.Resource] = [self.eks, *system_role_policies, *egress]
        system_nodes = self._managed_node_group(
            name, cluster_name, layout.system_nodes, system_node_role, node_subnet_ids, tags, node_waits
        )
        # Not pinned (see versions.py): EKS installs its default version for the cluster's Kubernetes.
        self.pod_identity_agent = aws.eks.Addon(
            f"{name}-pod-identity-agent",
            cluster_name=cluster_name,
            addon_name="eks-pod-identity-agent",
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=after_eks,
        )
        # CoreDNS as an EKS add-on, pinned: EKS leaves add-ons as they are when the control plane
        # is upgraded. It needs nodes to run on.
        aws.eks.Addon(
            f"{name}-coredns",
            cluster_name=cluster_name,
            addon_name="coredns",
            addon_version=COREDNS_ADDON_VERSION,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[system_nodes]),
        )

        # With a private endpoint, Pulumi itself reaches the API through the ingress rules.
        self.k8s_provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.eks.kubeconfig_json,
            opts=pulumi.ResourceOptions(parent=self, depends_on=api_server_rules),
        )
        on_cluster = pulumi.ResourceOptions(parent=self, provider=self.k8s_provider)
        self.namespaces = dict(layout.namespace_names)
        namespace: dict[str, pulumi.Output[str]] = {}
        for ns in layout.namespaces:
            made = k8s.core.v1.Namespace(f"{name}-{ns.name}-namespace", metadata=object_meta(ns.metadata), opts=on_cluster)
            namespace[ns.role] = made.metadata.name
        self.api_namespace = namespace["apis"]
        # Default deny in the API namespace, with exactly what traffic needs (enforced by the VPC
        # CNI's network policy agent, switched on in the eks.Cluster's vpc_cni_options).
        policy = network_policy(layout.api_namespace_name, egress_cidrs=spec.api_egress_cidrs)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-api-network-policy",
            metadata={**policy["metadata"], "namespace": self.api_namespace},
            spec=policy["spec"],
            opts=on_cluster,
        )

        ctx = AddonContext(
            name=name, parent=self, cluster_name=cluster_name, region=layout.region, tags=tags,
            k8s_provider=self.k8s_provider, eks=self.eks, ready=[system_nodes, self.pod_identity_agent],
        )
        self.addon_releases: dict[str, pulumi.Resource] = {}
        self.node_groups: dict[str, NodeGroup] = {}
        self.node_role_name = karpenter_node_role.name if karpenter_node_role is not None else None
        if karpenter_node_role is not None:
            crds, controller = install.karpenter(ctx, karpenter_node_role, karpenter_role_policies)
            self.addon_releases.update({render.KARPENTER_CRD_RELEASE: crds, render.KARPENTER_RELEASE: controller})
            selector = {DISCOVERY_TAG: cluster_name}
            for group in spec.node_groups:
                self.node_groups[group.name] = NodeGroup(
                    f"{name}-{group.name}",
                    group,
                    cluster_name=cluster_name,
                    node_role_name=karpenter_node_role.name,
                    subnet_selector_tags=selector,
                    security_group_selector_tags=selector,
                    tags=tags,
                    opts=pulumi.ResourceOptions(parent=self, providers=[self.k8s_provider], depends_on=[crds, controller]),
                )
        self.load_balancer = layout.load_balancer
        if self.load_balancer is not None:
            lb_controller = install.load_balancer_controller(ctx, self.vpc_id)
            self.addon_releases[render.LOAD_BALANCER_CONTROLLER_RELEASE] = lb_controller
            exposed = (render.PROMETHEUS_NAMESPACE,) if self._grafana_on_alb(observability, layout) else ()
            params, ingress_class = routing.ingress_class_objects(spec, API_NAMESPACE, extra_namespaces=exposed)
            after_controller = pulumi.ResourceOptions(parent=self, provider=self.k8s_provider, depends_on=[lb_controller])
            params_resource = custom_resource(f"{name}-api-ingress-class-params", params, after_controller)
            self.addon_releases["api-ingress-class"] = k8s.networking.v1.IngressClass(
                f"{name}-api-ingress-class", metadata=ingress_class["metadata"], spec=ingress_class["spec"],
                opts=pulumi.ResourceOptions.merge(after_controller, pulumi.ResourceOptions(depends_on=[params_resource])),
            )
        self.keda_http_interceptor = layout.keda_http_interceptor
        self.keda_operator_role_arn: pulumi.Output[str] | None = None
        if layout.keda:
            keda_role, keda_waits = install.keda_operator_role(ctx)
            self.keda_operator_role_arn = keda_role.arn
            self.addon_releases.update(
                install.keda(ctx, namespace["keda"], layout.keda_http_add_on, depends_on=keda_waits))
        if layout.metrics_server:
            self.addon_releases[render.METRICS_SERVER_RELEASE] = install.metrics_server(ctx)
        self.prometheus_url = layout.prometheus_url
        if layout.prometheus_nodes is not None:
            prometheus_nodes = self._managed_node_group(
                name, cluster_name, layout.prometheus_nodes, system_node_role, node_subnet_ids, tags, node_waits
            )
            rules = cluster_rules(spec, layout.instance_types, price_table())
            receiver: list[pulumi.Resource] = []
            if alert_receiver_secret is not None:
                receiver.append(install.alert_receiver_secret(ctx, namespace["prometheus"], alert_receiver_secret))
            self.addon_releases[render.PROMETHEUS_RELEASE] = install.prometheus(
                ctx, namespace["prometheus"], prometheus_nodes,
                render.prometheus_values(rules=rules, alerting=observability.alerting), depends_on=receiver,
            )
            if observability.grafana.enabled:
                boards = {"api": dashboards.api_dashboard(layout.api_namespace_name),
                          "cluster": dashboards.cluster_dashboard()}
                self.addon_releases["grafana"] = install.grafana(
                    ctx, namespace["prometheus"], observability, render.PROMETHEUS_URL, boards,
                )
                if self._grafana_on_alb(observability, layout):
                    assert self.load_balancer is not None
                    ingress = grafana_ingress(observability.grafana, render.PROMETHEUS_NAMESPACE,
                                              tuple(spec.operator_load_balancer_cidr_white_list),
                                              https=self.load_balancer.certificate_arn is not None)
                    k8s.networking.v1.Ingress(
                        f"{name}-grafana-ingress",
                        metadata={**object_meta(ingress["metadata"]), "namespace": namespace["prometheus"]},
                        spec=ingress["spec"],
                        opts=pulumi.ResourceOptions(parent=self, provider=self.k8s_provider, depends_on=[
                            self.addon_releases["grafana"], self.addon_releases["api-ingress-class"]]),
                    )
            if layout.dcgm_exporter:
                # In kube-system, as the device plugin: its pods ask for the system-node-critical priority.
                self.addon_releases["dcgm-exporter"] = install.dcgm_exporter(ctx, render.KUBE_SYSTEM)
        if layout.nvidia_device_plugin:
            self.addon_releases[render.NVIDIA_DEVICE_PLUGIN_RELEASE] = install.nvidia_device_plugin(ctx)
        if layout.neuron_device_plugin:
            self.addon_releases[render.NEURON_DEVICE_PLUGIN_RELEASE] = install.neuron_device_plugin(ctx)
        if layout.fluent_bit:
            self.addon_releases[render.FLUENT_BIT_RELEASE] = install.fluent_bit(ctx, namespace["logging"], layout.log_retention_days)

        # A known value at preview that still makes its users wait for the EKS cluster.
        self.cluster_name: pulumi.Output[str] = self.eks.urn.apply(lambda _: cluster_name)
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(self.eks.kubeconfig_json)
        self.oidc_provider_arn: pulumi.Output[str] = self.eks.oidc_provider_arn
        self.oidc_provider_url: pulumi.Output[str] = self.eks.oidc_provider_url
        self.oidc_issuer: pulumi.Output[str] = self.eks.oidc_issuer
        self.iam_policy_arns = list(spec.iam_policy_arns)
        self.node_group_specs = tuple(spec.node_groups)
        self.tags = tags
        self.handle: ClusterHandle = ClusterHandle(
            k8s_provider=self.k8s_provider,
            cluster_name=self.cluster_name,
            api_namespace=self.api_namespace,
            api_namespace_name=layout.api_namespace_name,
            node_group_specs=tuple(spec.node_groups),
            load_balancer=self.load_balancer,
            prometheus_url=self.prometheus_url,
            keda_http_interceptor=self.keda_http_interceptor,
            iam_policy_arns=tuple(spec.iam_policy_arns),
            tags=tags,
            addon_releases=self.addon_releases,
            region=layout.region,
            keda_operator_role_arn=self.keda_operator_role_arn,
            queue_scaler_role_path=render.queue_scaler_role_path(cluster_name),
            api_egress_cidrs=tuple(spec.api_egress_cidrs),
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_provider_url": self.oidc_provider_url,
                "node_role_name": self.node_role_name,
                "vpc_id": self.vpc_id,
                "namespaces": self.namespaces,
                "load_balancer": None if self.load_balancer is None else {
                    "scheme": self.load_balancer.scheme,
                    "cidr_allow_list": list(self.load_balancer.cidr_allow_list),
                    "certificate_arn": self.load_balancer.certificate_arn,
                    "ingress_class_name": self.load_balancer.ingress_class_name,
                    "ingress_group_name": self.load_balancer.ingress_group_name,
                },
                "prometheus_url": self.prometheus_url,
                "keda_http_interceptor": self.keda_http_interceptor,
            }
        )

    @staticmethod
    def _grafana_on_alb(observability: ObservabilitySpec, layout: ClusterLayout) -> bool:
        """Whether Grafana is served on the shared load balancer (CortexError if it cannot be)."""
        grafana = observability.grafana
        if not grafana.enabled or grafana.expose != "load-balancer" or layout.prometheus_url is None:
            return False
        if layout.load_balancer is None:
            raise CortexError("observability: grafana.expose: 'load-balancer' needs the AWS Load Balancer Controller "
                              "(addons.aws_load_balancer_controller is off); use expose: port-forward")
        return True

    def _network(
        self, name: str, cluster_name: str, layout: NetworkLayout, tags: dict[str, str]
    ) -> tuple[pulumi.Output[str], list[pulumi.Output[str]], list[pulumi.Output[str]], list[pulumi.Resource]]:
        """The new VPC; returns its id, the public and private subnet ids (private: [] without NAT),
        and what nodes need to reach AWS and the internet (route table associations, NAT gateways)."""
        child = pulumi.ResourceOptions(parent=self)
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=layout.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": cluster_name},
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": cluster_name}, opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            tags={**tags, "Name": f"{cluster_name}-public"},
            opts=child,
        )
        public: list[pulumi.Output[str]] = []
        egress: list[pulumi.Resource] = []
        nat_gateways: dict[str, aws.ec2.NatGateway] = {}
        for zone in layout.zones:
            az = zone.availability_zone
            subnet = aws.ec2.Subnet(
                f"{name}-public-{az}",
                vpc_id=vpc.id,
                cidr_block=zone.public_cidr,
                availability_zone=az,
                map_public_ip_on_launch=not layout.nodes_in_private_subnets,
                tags={**tags, **subnet_tags(cluster_name, layout, public=True), "Name": f"{cluster_name}-public-{az}"},
                opts=child,
            )
            egress.append(aws.ec2.RouteTableAssociation(
                f"{name}-public-{az}", subnet_id=subnet.id, route_table_id=public_routes.id, opts=child
            ))
            public.append(subnet.id)
            if zone.nat_gateway:
                address = aws.ec2.Eip(f"{name}-nat-{az}", domain="vpc", tags={**tags, "Name": f"{cluster_name}-nat-{az}"}, opts=child)
                nat_gateways[az] = aws.ec2.NatGateway(
                    f"{name}-nat-{az}",
                    allocation_id=address.allocation_id,
                    subnet_id=subnet.id,
                    tags={**tags, "Name": f"{cluster_name}-nat-{az}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
                )
        private: list[pulumi.Output[str]] = []
        for zone in layout.zones:
            if zone.private_cidr is None:
                continue
            az = zone.availability_zone
            subnet = aws.ec2.Subnet(
                f"{name}-private-{az}",
                vpc_id=vpc.id,
                cidr_block=zone.private_cidr,
                availability_zone=az,
                tags={**tags, **subnet_tags(cluster_name, layout, public=False), "Name": f"{cluster_name}-private-{az}"},
                opts=child,
            )
            routes = aws.ec2.RouteTable(
                f"{name}-private-{az}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_gateways[layout.nat_zone_of(az)].id)],
                tags={**tags, "Name": f"{cluster_name}-private-{az}"},
                opts=child,
            )
            egress.append(
                aws.ec2.RouteTableAssociation(f"{name}-private-{az}", subnet_id=subnet.id, route_table_id=routes.id, opts=child)
            )
            private.append(subnet.id)
        return vpc.id, public, private, [*egress, *nat_gateways.values()]

    def _api_server_ingress(
        self, name: str, cluster_name: str, sources: Sequence[ApiServerSource], tags: dict[str, str]
    ) -> list[aws.vpc.SecurityGroupIngressRule]:
        """HTTPS to the private API endpoint from each of ``sources`` (none with a public endpoint).

        One rule per network on the EKS-made cluster security group (which the endpoint's network
        interfaces carry).
        """
        return [
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-{source.key}",
                security_group_id=self.eks.cluster_security_group_id,
                ip_protocol="tcp",
                from_port=API_SERVER_PORT,
                to_port=API_SERVER_PORT,
                description=f"Kubernetes API of EKS cluster {cluster_name} from {source.cidr}",
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self),
                **{"cidr_ipv6" if source.ipv6 else "cidr_ipv4": source.cidr},
            )
            for source in sources
        ]

    def _node_role(
        self, name: str, what: str, cluster_name: str, tags: dict[str, str]
    ) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
        """A role EC2 nodes run as, with :data:`NODE_POLICIES`: ``<name>-role`` and its attachments."""
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=to_json(service_trust_policy("ec2.amazonaws.com")),
            description=f"{what} of EKS cluster {cluster_name}",
            tags=tags,
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy}", role=role.name, policy_arn=aws_managed_policy_arn(policy), opts=child
            )
            for policy in NODE_POLICIES
        ]
        return role, attachments

    def _managed_node_group(
        self,
        name: str,
        cluster_name: str,
        nodes: ManagedNodes,
        role: aws.iam.Role,
        subnet_ids: Sequence[pulumi.Input[str]],
        tags: dict[str, str],
        depends_on: Sequence[pulumi.Resource],
    ) -> aws.eks.NodeGroup:
        """The EKS managed node group ``<name>-<nodes.key>`` (its access entry is made by EKS)."""
        return aws.eks.NodeGroup(
            f"{name}-{nodes.key}",
            cluster_name=cluster_name,
            version=KUBERNETES_VERSION,
            node_role_arn=role.arn,
            subnet_ids=list(subnet_ids),
            instance_types=[nodes.instance_type],
            capacity_type="ON_DEMAND",
            ami_type=nodes.ami_type,
            disk_size=nodes.disk_size,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(desired_size=nodes.size, min_size=nodes.size, max_size=nodes.size),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=dict(nodes.labels),
            taints=[aws.eks.NodeGroupTaintArgs(**nodes.taint)],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )


def _check_args(name: str, spec: object, vpc_id: str | None, system_instance_type: str) -> None:
    """The component's own arguments; the spec and the add-on switches are checked by
    :func:`~cortex_iac.render.cluster_layout.cluster_layout`."""
    if not isinstance(name, str) or not name:
        raise CortexError(f"Cluster: name must be a non-empty string, got {name!r}")
    if not isinstance(spec, ClusterSpec):
        raise CortexError(f"Cluster {name!r}: spec must be a ClusterSpec, got {type(spec).__name__}")
    if spec.subnets and not vpc_id:
        raise CortexError(
            f"Cluster {name!r}: vpc_id is required with cluster.yaml subnets (the VPC of "
            f"{', '.join(s.subnet_id for s in spec.subnets)}; it is not looked up)"
        )
    if vpc_id and not spec.subnets:
        raise CortexError(f"Cluster {name!r}: vpc_id is only for cluster.yaml subnets; without them a VPC is created")
    if system_instance_type not in INSTANCE_TYPES:
        raise CortexError(f"Cluster {name!r}: system_instance_type: {system_instance_type!r} is not in the bundled instance table")
