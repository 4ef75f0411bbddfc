"""`cortex diff`: what would change between two plan files, resource by resource, without credentials.

Resources are matched by URN: only in HEAD -> create, only in BASE -> delete, in both with other
inputs -> update, or replace when a changed input cannot change in place. A URN changes when a
resource is renamed, re-parented or changes type; that shows as delete + create, unless the HEAD
resource names the BASE URN in its ``aliases`` option (recorded in the plan): then, as for Pulumi,
it is the same resource under a new URN, compared input by input.

Values only known after apply (``$unknown`` in the plan) are shown as "(known after apply)". Two
unknowns are the same value unless what they come from changed: the resources in the input's
``property_dependencies`` differ, or one of them is replaced. Replacements spread that way, the way
``pulumi preview`` spreads them: a replaced VPC makes its subnets' ``vpcId`` unknown, which replaces
them too; a replaced Kubernetes provider replaces every object it manages.

Replace-on-change inputs (a change anywhere under these paths replaces the resource):

Kubernetes (pulumi-kubernetes' own table, provider/pkg/provider/diff.go):

| resource | inputs |
|---|---|
| every Kubernetes object | ``metadata.name``, ``metadata.namespace`` |
| apps/v1 Deployment, DaemonSet | ``spec.selector`` |
| apps/v1 StatefulSet | ``spec.selector``, ``spec.serviceName``, ``spec.volumeClaimTemplates``, ``spec.podManagementPolicy``, ``spec.revisionHistoryLimit`` |
| batch/v1 Job | ``spec.selector``, ``spec.template``, ``spec.completions``, ``spec.parallelism`` |
| core/v1 Service | ``spec.clusterIP`` |
| core/v1 ConfigMap | ``data``, ``binaryData`` (unless its provider sets ``enableConfigMapMutable`` and the map is not ``immutable``) |
| core/v1 Secret | ``type``; also ``data``, ``stringData`` (unless ``enableSecretMutable`` and not ``immutable``) |
| core/v1 PersistentVolumeClaim | ``spec.accessModes``, ``spec.selector``, ``spec.storageClassName``, ``spec.volumeName`` |
| core/v1 Pod | the pod spec's scheduling and identity fields and most container fields (see ``_POD``) |
| rbac.authorization.k8s.io/v1 RoleBinding, ClusterRoleBinding | ``roleRef`` |
| storage.k8s.io/v1 StorageClass | ``parameters``, ``provisioner`` |
| policy/v1beta1 PodDisruptionBudget | ``spec`` |
| helm.sh/v3 Release | ``name``, ``namespace`` |
| pulumi:providers:kubernetes | ``kubeconfig``, ``context``, ``cluster`` (a new target cluster), ``clusterIdentifier``, ``renderYamlToDirectory`` |

AWS and EKS resources the library creates (``ForceNew`` / ``RequiresReplace`` in the Terraform AWS
provider schema that pulumi-aws is generated from, internal/service/*; pulumi-eks' docstrings for its
component). ``region``: since Terraform AWS provider v6 (pulumi-aws 7) every regional resource takes
one, and a new region replaces it; IAM is global. A type with nothing here but ``region`` updates
everything else in place:

| resource | inputs |
|---|---|
| aws:cloudwatch/eventRule:EventRule | ``name``, ``namePrefix``, ``eventBusName``, ``region`` |
| aws:cloudwatch/eventTarget:EventTarget | ``rule``, ``eventBusName``, ``targetId``, ``region`` |
| aws:cloudwatch/logGroup:LogGroup | ``name``, ``namePrefix``, ``logGroupClass``, ``region`` |
| aws:dynamodb/table:Table | ``name``, ``hashKey``, ``rangeKey``, ``localSecondaryIndexes``, ``restoreSourceName``, ``restoreToLatestTime``, ``restoreDateTime``, ``region`` |
| aws:ec2/eip:Eip | ``address``, ``domain``, ``networkBorderGroup``, ``publicIpv4Pool``, ``region`` |
| aws:ec2/internetGateway:InternetGateway | ``region`` (``vpcId`` detaches and attaches in place) |
| aws:ec2/natGateway:NatGateway | ``subnetId``, ``allocationId``, ``connectivityType``, ``privateIp``, ``availabilityMode``, ``vpcId``, ``region`` |
| aws:ec2/routeTable:RouteTable | ``vpcId``, ``region`` |
| aws:ec2/routeTableAssociation:RouteTableAssociation | ``subnetId``, ``gatewayId``, ``region`` (``routeTableId`` is swapped in place) |
| aws:ec2/securityGroup:SecurityGroup | ``name``, ``namePrefix``, ``description``, ``vpcId``, ``region`` |
| aws:ec2/subnet:Subnet | ``vpcId``, ``cidrBlock``, ``availabilityZone``, ``availabilityZoneId``, ``ipv4IpamPoolId``, ``ipv4NetmaskLength``, ``ipv6IpamPoolId``, ``ipv6Native``, ``ipv6NetmaskLength``, ``outpostArn``, ``region`` |
| aws:ec2/tag:Tag | ``resourceId``, ``key``, ``region`` |
| aws:ec2/vpc:Vpc | ``cidrBlock``, ``ipv4IpamPoolId``, ``ipv4NetmaskLength``, ``region`` |
| aws:ecr/repository:Repository | ``name``, ``encryptionConfigurations``, ``region`` |
| aws:eks/addon:Addon | ``clusterName``, ``addonName``, ``region`` |
| aws:eks/cluster:Cluster | ``name``, ``roleArn``, ``bootstrapSelfManagedAddons``, ``accessConfig.bootstrapClusterCreatorAdminPermissions``, ``kubernetesNetworkConfig.ipFamily``, ``kubernetesNetworkConfig.serviceIpv4Cidr``, ``outpostConfig``, ``remoteNetworkConfig``, ``region`` |
| aws:eks/nodeGroup:NodeGroup | ``clusterName``, ``nodeGroupName``, ``nodeGroupNamePrefix``, ``nodeRoleArn``, ``subnetIds``, ``instanceTypes``, ``amiType``, ``capacityType``, ``diskSize``, ``remoteAccess``, ``launchTemplate.id``, ``launchTemplate.name``, ``region`` |
| aws:eks/podIdentityAssociation:PodIdentityAssociation | ``clusterName``, ``namespace``, ``serviceAccount``, ``region`` |
| aws:iam/policy:Policy | ``name``, ``namePrefix``, ``path``, ``description`` |
| aws:iam/role:Role | ``name``, ``namePrefix``, ``path`` |
| aws:iam/rolePolicy:RolePolicy | ``role``, ``name``, ``namePrefix`` |
| aws:iam/rolePolicyAttachment:RolePolicyAttachment | ``role``, ``policyArn`` |
| aws:kms/key:Key | ``customerMasterKeySpec``, ``keyUsage``, ``multiRegion``, ``customKeyStoreId``, ``xksKeyId``, ``region`` |
| aws:s3/bucket:Bucket | ``bucket``, ``bucketPrefix``, ``bucketNamespace``, ``objectLockEnabled``, ``region`` |
| aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration | ``bucket``, ``expectedBucketOwner``, ``region`` |
| aws:s3/bucketOwnershipControls:BucketOwnershipControls | ``bucket``, ``region`` |
| aws:s3/bucketPolicy:BucketPolicy | ``bucket``, ``region`` |
| aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock | ``bucket``, ``region`` |
| aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration | ``bucket``, ``expectedBucketOwner``, ``region`` |
| aws:sqs/queue:Queue | ``name``, ``namePrefix``, ``fifoQueue``, ``region`` |
| aws:sqs/queuePolicy:QueuePolicy | ``queueUrl``, ``region`` |
| aws:sqs/redriveAllowPolicy:RedriveAllowPolicy | ``queueUrl``, ``region`` |
| aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule | ``securityGroupId``, ``region`` (also a change of source kind, e.g. ``cidrIpv4`` to ``referencedSecurityGroupId``, which this table cannot express) |
| eks:index:Cluster | ``name``, ``serviceRole``, ``vpcId`` (its security groups), ``ipFamily``, ``kubernetesServiceIpAddressRange``, ``bootstrapSelfManagedAddons`` |

Every other input of these, and every input of other types, is shown as an in-place update. EKS's
``vpcConfig.subnetIds`` and ``securityGroupIds`` update in place in the current schema.

Resource options (recorded in the plan, taken from HEAD as ``pulumi up`` takes them from the program):

- ``ignoreChanges``: before comparing, the BASE value is copied over the HEAD value at each path, or
  the HEAD value dropped where BASE has none (Pulumi's ``PropertyPath.Reset``), so an ignored input
  never shows as changed (``init_replicas`` after KEDA owns ``spec.replicas``). A path that does not
  fit the inputs (``pulumi up`` refuses the update then) is left out.
- ``replaceOnChanges``: a change at or below one of its paths replaces the resource, like the tables.
- ``deleteBeforeReplace``: a replacement deletes the old resource first; the diff says so.

Property paths use Pulumi's syntax: ``a.b``, ``a["key.with.dots"]``, ``a[0]``, ``a[*].b``, ``*``.
"""

from __future__ import annotations

import copy
import difflib
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cortex_iac.errors import PlanError
from cortex_iac.plan.cost import (
    JOB_WORKERS_TITLE,
    ApiCost,
    CostReport,
    StackCost,
    cost_of,
    job_worker_rows,
    money_range,
    stack_cost,
)
from cortex_iac.plan.preview import Headline, SummaryRow, anchor, headlines, summary
from cortex_iac.plan.values import SECRET, UNKNOWN

# GitHub refuses comments over 65,536 characters; leave room for the workflow's marker line.
MARKDOWN_LIMIT = 65_000
_FOLD = 100


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()

Segment = str | int
Rule = tuple[str, ...]


def _rules(*paths: str) -> tuple[Rule, ...]:
    return tuple(tuple(p.split(".")) for p in paths)


_K8S_IDENTITY = _rules("metadata.name", "metadata.namespace")
_SELECTOR = _rules("spec.selector")
_CONTAINER = (
    "args command env image imagePullPolicy lifecycle livenessProbe ports readinessProbe resources "
    "securityContext stdin stdinOnce terminationMessagePath terminationMessagePolicy tty volumeDevices "
    "volumeMounts workingDir"
).split()
_POD = _rules(
    *(
        f"spec.{f}"
        for f in (
            "affinity automountServiceAccountToken dnsConfig dnsPolicy enableServiceLinks hostAliases hostIPC "
            "hostNetwork hostPID hostname imagePullSecrets nodeName nodeSelector overhead preemptionPolicy "
            "priority priorityClassName readinessGates restartPolicy runtimeClassName schedulerName "
            "securityContext serviceAccount serviceAccountName shareProcessNamespace subdomain "
            "terminationGracePeriodSeconds volumes"
        ).split()
    ),
    *(f"spec.{c}.*.{f}" for c in ("containers", "initContainers") for f in _CONTAINER),
)
_PV_SOURCES = (
    "awsElasticBlockStore azureDisk azureFile cephfs cinder csi fc flexVolume flocker gcePersistentDisk "
    "glusterfs hostPath iscsi local nfs photonPersistentDisk portworxVolume quobyte rbd scaleIO storageos "
    "vsphereVolume"
).split()
# (group, version, kind) -> replace-on-change paths, from pulumi-kubernetes' forceNew table.
_K8S_KINDS: dict[tuple[str, str, str], tuple[Rule, ...]] = {
    **{("apps", v, k): _SELECTOR for v in ("v1", "v1beta2") for k in ("Deployment", "DaemonSet")},
    **{
        ("apps", v, "StatefulSet"): _rules(
            "spec.podManagementPolicy", "spec.revisionHistoryLimit", "spec.selector", "spec.serviceName",
            "spec.volumeClaimTemplates",
        )
        for v in ("v1", "v1beta1", "v1beta2")
    },
    **{
        ("batch", v, "Job"): _rules("spec.completions", "spec.parallelism", "spec.selector", "spec.template")
        for v in ("v1", "v1beta1", "v2alpha1")
    },
    ("core", "v1", "PersistentVolume"): _rules(*(f"spec.{s}" for s in _PV_SOURCES)),
    ("core", "v1", "PersistentVolumeClaim"): _rules(
        "spec.accessModes", "spec.selector", "spec.storageClassName", "spec.volumeName"
    ),
    ("core", "v1", "Pod"): _POD,
    ("core", "v1", "ResourceQuota"): _rules("spec.scopes"),
    ("core", "v1", "Secret"): _rules("type"),
    ("core", "v1", "Service"): _rules("spec.clusterIP"),
    ("policy", "v1beta1", "PodDisruptionBudget"): _rules("spec"),
    **{
        ("rbac.authorization.k8s.io", v, k): _rules("roleRef")
        for v in ("v1", "v1beta1", "v1alpha1")
        for k in ("RoleBinding", "ClusterRoleBinding")
    },
    ("storage.k8s.io", "v1", "StorageClass"): _rules("parameters", "provisioner"),
}
_OTHER: dict[str, tuple[Rule, ...]] = {
    "kubernetes:helm.sh/v3:Release": _rules("name", "namespace"),
    "pulumi:providers:kubernetes": _rules("kubeconfig", "context", "cluster", "clusterIdentifier", "renderYamlToDirectory"),
    # AWS and EKS (module docstring); every type the library creates has an entry, a test checks it.
    "aws:cloudwatch/eventRule:EventRule": _rules("name", "namePrefix", "eventBusName", "region"),
    "aws:cloudwatch/eventTarget:EventTarget": _rules("rule", "eventBusName", "targetId", "region"),
    "aws:cloudwatch/logGroup:LogGroup": _rules("name", "namePrefix", "logGroupClass", "region"),
    "aws:dynamodb/table:Table": _rules(
        "name", "hashKey", "rangeKey", "localSecondaryIndexes", "restoreSourceName", "restoreToLatestTime",
        "restoreDateTime", "region",
    ),
    "aws:ec2/eip:Eip": _rules("address", "domain", "networkBorderGroup", "publicIpv4Pool", "region"),
    "aws:ec2/internetGateway:InternetGateway": _rules("region"),
    "aws:ec2/natGateway:NatGateway": _rules(
        "subnetId", "allocationId", "connectivityType", "privateIp", "availabilityMode", "vpcId", "region"
    ),
    "aws:ec2/routeTable:RouteTable": _rules("vpcId", "region"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _rules("subnetId", "gatewayId", "region"),
    "aws:ec2/securityGroup:SecurityGroup": _rules("name", "namePrefix", "description", "vpcId", "region"),
    "aws:ec2/subnet:Subnet": _rules(
        "vpcId", "cidrBlock", "availabilityZone", "availabilityZoneId", "ipv4IpamPoolId", "ipv4NetmaskLength",
        "ipv6IpamPoolId", "ipv6Native", "ipv6NetmaskLength", "outpostArn", "region",
    ),
    "aws:ec2/tag:Tag": _rules("resourceId", "key", "region"),
    "aws:ec2/vpc:Vpc": _rules("cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength", "region"),
    "aws:ecr/repository:Repository": _rules("name", "encryptionConfigurations", "region"),
    "aws:eks/addon:Addon": _rules("clusterName", "addonName", "region"),
    "aws:eks/cluster:Cluster": _rules(
        "name", "roleArn", "bootstrapSelfManagedAddons", "accessConfig.bootstrapClusterCreatorAdminPermissions",
        "kubernetesNetworkConfig.ipFamily", "kubernetesNetworkConfig.serviceIpv4Cidr", "outpostConfig",
        "remoteNetworkConfig", "region",
    ),
    "aws:eks/nodeGroup:NodeGroup": _rules(
        "clusterName", "nodeGroupName", "nodeGroupNamePrefix", "nodeRoleArn", "subnetIds", "instanceTypes", "amiType",
        "capacityType", "diskSize", "remoteAccess", "launchTemplate.id", "launchTemplate.name", "region",
    ),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": _rules("clusterName", "namespace", "serviceAccount", "region"),
    "aws:iam/policy:Policy": _rules("name", "namePrefix", "path", "description"),
    "aws:iam/role:Role": _rules("name", "namePrefix", "path"),
    "aws:iam/rolePolicy:RolePolicy": _rules("role", "name", "namePrefix"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _rules("role", "policyArn"),
    "aws:kms/key:Key": _rules("customerMasterKeySpec", "keyUsage", "multiRegion", "customKeyStoreId", "xksKeyId", "region"),
    "aws:s3/bucket:Bucket": _rules("bucket", "bucketPrefix", "bucketNamespace", "objectLockEnabled", "region"),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _rules("bucket", "expectedBucketOwner", "region"),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _rules("bucket", "region"),
    "aws:s3/bucketPolicy:BucketPolicy": _rules("bucket", "region"),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _rules("bucket", "region"),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": _rules(
        "bucket", "expectedBucketOwner", "region"),
    "aws:sqs/queue:Queue": _rules("name", "namePrefix", "fifoQueue", "region"),
    "aws:sqs/queuePolicy:QueuePolicy": _rules("queueUrl", "region"),
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": _rules("queueUrl", "region"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _rules("securityGroupId", "region"),
    "eks:index:Cluster": _rules(
        "name", "serviceRole", "vpcId", "ipFamily", "kubernetesServiceIpAddressRange", "bootstrapSelfManagedAddons"
    ),
}
_NOT_K8S_OBJECTS = ("kubernetes:helm.sh/", "kubernetes:yaml:", "kubernetes:kustomize:")


@dataclass(frozen=True)
class Change:
    """One changed input: its path, the value before and after (``MISSING`` when absent)."""

    path: tuple[Segment, ...]
    old: Any
    new: Any
    replaces: bool = False
    note: str | None = None

    @property
    def path_text(self) -> str:
        """``spec.template.spec.containers[0].image``; keys that are not identifiers in ``["..."]``."""
        return path_text(self.path)

    @property
    def kind(self) -> str:
        """``added``, ``removed`` or ``changed``."""
        return "added" if self.old is MISSING else "removed" if self.new is MISSING else "changed"


@dataclass(frozen=True)
class ResourceDiff:
    """What happens to one resource: ``create``, ``update``, ``replace`` or ``delete``."""

    urn: str
    type: str
    name: str
    op: str
    changes: tuple[Change, ...] = ()
    reasons: tuple[str, ...] = ()
    delete_first: bool = False


@dataclass
class DiffReport:
    """Every resource that changes, in URN order, and how many do not."""

    base_stack: str
    head_stack: str
    project: str
    resources: list[ResourceDiff]
    unchanged: int
    base_cost: CostReport | None = None
    head_cost: CostReport | None = None
    cost_error: str | None = None
    headline: list[Headline] = field(default_factory=list)
    summary: list[SummaryRow] = field(default_factory=list)
    base_stack_cost: StackCost | None = None
    head_stack_cost: StackCost | None = None
    base_resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    head_resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    renamed_from: dict[str, str] = field(default_factory=dict)  # HEAD URN -> its BASE URN (aliases)
    head_config: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = {op: sum(1 for r in self.resources if r.op == op) for op in ("create", "update", "replace", "delete")}


def path_text(path: tuple[Segment, ...]) -> str:
    """Render a path of keys and list indexes."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$-]*", seg):
            out += f".{seg}" if out else seg
        else:
            out += f"[{json.dumps(seg)}]"
    return out


def diff_plans(base: dict[str, Any], head: dict[str, Any]) -> DiffReport:
    """Compare two plan documents (as :func:`~cortex_iac.plan.plan.load_plan` returns them)."""
    news = {r["urn"]: r for r in head["resources"]}
    renamed = _renames(base, news)
    # BASE as HEAD names things: a renamed resource under its new URN, references to it too.
    olds = {renamed.get(r["urn"], r["urn"]): _renamed_refs(r, renamed) for r in base["resources"]}
    both = sorted(set(olds) & set(news))
    ctx = _Context(head)
    replaced: set[str] = set()
    # Replacements make other inputs unknown, which may replace more: iterate to a fixed point.
    while True:
        diffs = {urn: _diff_resource(olds[urn], news[urn], replaced, ctx) for urn in both}
        now = {urn for urn, d in diffs.items() if d is not None and d.op == "replace"}
        if now == replaced:
            break
        replaced = now
    out = [d for d in diffs.values() if d is not None]
    out += [ResourceDiff(u, news[u]["type"], news[u]["name"], "create") for u in set(news) - set(olds)]
    out += [ResourceDiff(u, olds[u]["type"], olds[u]["name"], "delete") for u in set(olds) - set(news)]
    out.sort(key=lambda d: d.urn)
    return DiffReport(
        base_stack=base.get("stack", "?"),
        head_stack=head.get("stack", "?"),
        project=head.get("project", "?"),
        resources=out,
        unchanged=len(both) - sum(1 for u in both if diffs[u] is not None),
        base_resources={r["urn"]: r for r in base["resources"]},
        head_resources=news,
        renamed_from={new: old for old, new in renamed.items()},
        head_config=dict(head.get("config") or {}),
    )


def _renames(base: dict[str, Any], news: dict[str, dict[str, Any]]) -> dict[str, str]:
    """BASE URN -> HEAD URN for resources whose HEAD registration aliases their BASE URN."""
    old_urns = {r["urn"] for r in base["resources"]}
    renamed: dict[str, str] = {}
    for urn, r in news.items():
        if urn in old_urns:
            continue
        for alias in r.get("aliases") or []:
            if alias in old_urns and alias not in news and alias not in renamed:
                renamed[alias] = urn
                break
    return renamed


def _renamed_refs(r: dict[str, Any], renamed: dict[str, str]) -> dict[str, Any]:
    if not renamed:
        return r

    def moved(urns: list[str]) -> list[str]:
        return sorted(renamed.get(u, u) for u in urns)

    return {
        **r,
        "parent": renamed.get(r.get("parent") or "", r.get("parent")),
        "provider": renamed.get(r.get("provider") or "", r.get("provider")),
        "dependencies": moved(r.get("dependencies") or []),
        "property_dependencies": {k: moved(v) for k, v in (r.get("property_dependencies") or {}).items()},
    }


class _Context:
    """What replacement rules need to know about the head plan: providers' settings."""

    def __init__(self, head: dict[str, Any]) -> None:
        self.by_urn = {r["urn"]: r for r in head["resources"]}
        self.config = head.get("config") or {}

    def provider_flag(self, r: dict[str, Any], flag: str) -> bool:
        provider = self.by_urn.get(r.get("provider") or "")
        value = provider["inputs"].get(flag) if provider else self.config.get(f"kubernetes:{flag}")
        return value in (True, "true")


def _diff_resource(old: dict[str, Any], new: dict[str, Any], replaced: set[str], ctx: _Context) -> ResourceDiff | None:
    rules = _replace_rules(new, ctx)
    ignored = [property_path(p) for p in new.get("ignore_changes") or []]
    option_rules = tuple(tuple(str(seg) for seg in property_path(p)) for p in new.get("replace_on_changes") or [])
    changes: list[Change] = []
    old_deps = old.get("property_dependencies") or {}
    new_deps = new.get("property_dependencies") or {}
    old_inputs, new_inputs = old["inputs"], _with_ignored(old["inputs"], new["inputs"], ignored)
    for key in sorted(set(old_inputs) | set(new_inputs)):
        deps = set(new_deps.get(key, []))
        moved = set(old_deps.get(key, [])) != deps
        from_replaced = sorted(deps & replaced)
        note = None
        if from_replaced:
            note = "comes from replaced " + ", ".join(_short(u) for u in from_replaced)
        elif moved:
            note = "comes from other resources"
        _walk(old_inputs.get(key, MISSING), new_inputs.get(key, MISSING), (key,), note, changes)
    # Ignored values are equal now; an unknown inside one may still carry a note: drop those too.
    changes = [c for c in changes if not any(_contains(p, c.path) for p in ignored)]
    forced_by: list[tuple[Change, str]] = []
    for i, change in enumerate(changes):
        for rules_of, why in ((rules, "schema"), (option_rules, "option")):
            marked = _with_replace(change, rules_of)
            if marked.replaces:
                changes[i] = marked
                forced_by.append((marked, why))
                break
    reasons = []
    for why, text in (("schema", "cannot change in place"), ("option", "changed, and replaceOnChanges names it")):
        paths = [c.path_text for c, by in forced_by if by == why]
        if paths:
            reasons.append(f"{', '.join(paths)} {text}")
    provider_old, provider_new = old.get("provider"), new.get("provider")
    if provider_old != provider_new:
        reasons.append(f"its provider changed ({_short(provider_old)} -> {_short(provider_new)})")
    elif provider_new in replaced:
        reasons.append(f"its provider {_short(provider_new)} is replaced")
    if not changes and not reasons:
        return None
    op = "replace" if reasons else "update"
    delete_first = op == "replace" and bool(new.get("delete_before_replace"))
    return ResourceDiff(new["urn"], new["type"], new["name"], op, tuple(changes), tuple(reasons), delete_first)


def property_path(text: str) -> tuple[Segment, ...]:
    """The segments of a Pulumi property path: names and quoted keys as str, indexes as int, and
    ``*`` (any key or index) for ``*`` / ``[*]``. Raises PlanError for a malformed path."""
    out: list[Segment] = []
    i = 0
    while i < len(text):
        if text[i] == ".":
            if i == 0 or i + 1 == len(text):
                raise PlanError(f"property path {text!r}: a '.' must be between two names")
            i += 1
        elif text.startswith('["', i):
            key, i = _quoted_key(text, i + 2)
            out.append(key)
        elif text[i] == "[":
            end = text.find("]", i)
            inner = text[i + 1 : end]
            if end < 0 or not (inner == "*" or inner.isdigit()):
                raise PlanError(f"property path {text!r}: '[' must hold an index, \"*\" or a quoted key, then ']'")
            out.append(inner if inner == "*" else int(inner))
            i = end + 1
        else:
            end = i
            while end < len(text) and text[end] not in ".[":
                end += 1
            out.append(text[i:end])
            i = end
    if not out:
        raise PlanError(f"property path {text!r} is empty")
    return tuple(out)


def _quoted_key(text: str, i: int) -> tuple[str, int]:
    # From just after '["' to just after the closing '"]'; \" stands for a quote.
    key = ""
    while i < len(text) and text[i] != '"':
        if text.startswith('\\"', i):
            key, i = key + '"', i + 2
        else:
            key, i = key + text[i], i + 1
    if not text.startswith('"]', i):
        raise PlanError(f"property path {text!r}: a quoted key must end with '\"]'")
    return key, i + 2


def _contains(path: tuple[Segment, ...], other: tuple[Segment, ...]) -> bool:
    """Whether ``other`` is ``path`` or below it (``*`` matches any one key or index)."""
    return len(other) >= len(path) and all(p == "*" or p == o for p, o in zip(path, other, strict=False))


def _with_ignored(old: dict[str, Any], new: dict[str, Any], paths: list[tuple[Segment, ...]]) -> dict[str, Any]:
    """``new`` with each path reset to its value in ``old`` (see the module docstring)."""
    result = copy.deepcopy(new)
    for path in paths:
        attempt = copy.deepcopy(result)
        if _reset(path, old, attempt):
            result = attempt
    return result


def _reset(path: tuple[Segment, ...], old: Any, new: Any) -> bool:
    # Pulumi's PropertyPath.Reset on plain JSON: changes the containers of ``new`` in place, never
    # creates a missing level or resizes a list; False when the path does not fit.
    key, rest = path[0], path[1:]
    if isinstance(key, int):
        both = isinstance(old, list) and isinstance(new, list)
        if not both:
            return not isinstance(old, list) and not isinstance(new, list)
        if key >= len(old) or key >= len(new):
            return not rest and key >= len(old) and key >= len(new)
        if not rest:
            new[key] = copy.deepcopy(old[key])
            return True
        return _reset(rest, old[key], new[key])
    if key == "*":
        if isinstance(old, list) and isinstance(new, list):
            if len(old) != len(new):
                return False
            if not rest:
                new[:] = copy.deepcopy(old)
                return True
            return all(_reset(rest, o, n) for o, n in zip(old, new, strict=True))
        if isinstance(old, dict) and isinstance(new, dict):
            if not rest:
                new.clear()
                new.update(copy.deepcopy(old))
                return True
            return all(k in new and _reset(rest, v, new[k]) for k, v in old.items())
        return not rest and isinstance(new, (dict, list))
    if not rest:
        if isinstance(old, dict) and key in old:
            if not isinstance(new, dict):
                return False
            new[key] = copy.deepcopy(old[key])
        elif isinstance(new, dict):
            new.pop(key, None)
        return True
    if not isinstance(old, dict) or not isinstance(new, dict):
        return not isinstance(old, dict) and not isinstance(new, dict)
    if key not in new:
        return key not in old
    return _reset(rest, old.get(key), new[key])


def _walk(old: Any, new: Any, path: tuple[Segment, ...], note: str | None, out: list[Change]) -> None:
    if old == new:
        if note is not None:
            # Same unknown, different source: it may be another value after apply.
            out.extend(Change(p, UNKNOWN, UNKNOWN, note=note) for p in _unknown_leaves(new, path))
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _walk(old.get(key, MISSING), new.get(key, MISSING), (*path, key), note, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            _walk(old[i] if i < len(old) else MISSING, new[i] if i < len(new) else MISSING, (*path, i), note, out)
        return
    out.append(Change(path, old, new, note=note if UNKNOWN in (old, new) else None))


def _unknown_leaves(value: Any, path: tuple[Segment, ...]) -> list[tuple[Segment, ...]]:
    if value == UNKNOWN:
        return [path]
    if isinstance(value, dict):
        return [p for k in sorted(value) for p in _unknown_leaves(value[k], (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _unknown_leaves(v, (*path, i))]
    return []


def replace_inputs(type_: str) -> list[str] | None:
    """The inputs whose change replaces a resource of a non-Kubernetes type (the module docstring's
    tables), as paths; None for a type without an entry (all its inputs update in place)."""
    rules = _OTHER.get(type_)
    return None if rules is None else [".".join(rule) for rule in rules]


def _replace_rules(r: dict[str, Any], ctx: _Context) -> tuple[Rule, ...]:
    type_ = r["type"]
    if type_ in _OTHER:
        return _OTHER[type_]
    if not (type_.startswith("kubernetes:") and r.get("custom", True)) or type_.startswith(_NOT_K8S_OBJECTS):
        return ()
    gv, kind = type_.split(":")[1:3]
    group, _, version = gv.rpartition("/")
    key = (group, version, kind)
    immutable = r["inputs"].get("immutable") in (True, "true")
    rules = _K8S_IDENTITY + _K8S_KINDS.get(key, ())
    if key == ("core", "v1", "Secret") and (immutable or not ctx.provider_flag(r, "enableSecretMutable")):
        rules += _rules("data", "stringData")
    if key == ("core", "v1", "ConfigMap") and (immutable or not ctx.provider_flag(r, "enableConfigMapMutable")):
        rules += _rules("data", "binaryData")
    return rules


def _with_replace(change: Change, rules: tuple[Rule, ...]) -> Change:
    for rule in rules:
        n = min(len(rule), len(change.path))
        if not all(r == "*" or r == str(p) for r, p in zip(rule[:n], change.path[:n], strict=True)):
            continue
        rest = rule[n:]
        # At or below the rule's path; or a whole parent changed (unknown, added, removed, retyped)
        # that holds the rule's path on either side.
        if not rest or UNKNOWN in (change.old, change.new) or _holds(change.old, rest) or _holds(change.new, rest):
            return Change(change.path, change.old, change.new, True, change.note)
    return change


def _holds(value: Any, rest: Rule) -> bool:
    if not rest:
        return True
    head, tail = rest[0], rest[1:]
    if head == "*":
        values = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
        return any(_holds(v, tail) for v in values)
    return isinstance(value, dict) and head in value and _holds(value[head], tail)


def _short(urn: str | None) -> str:
    if not urn:
        return "(default)"
    parts = urn.split("::")
    return f"{parts[-2].split('$')[-1]} {parts[-1]}" if len(parts) >= 4 else urn


# ---- rendering ----------------------------------------------------------------------------------

_SIGN = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}
_DELETE_FIRST = " (deleted before it is created again: deleteBeforeReplace)"


def show(value: Any, width: int = _FOLD) -> str:
    """A value for people: unknowns and secrets in words, JSON otherwise, folded past ``width``
    (renderers show two changed texts as their changed lines instead, see :func:`line_diff`)."""
    if value is MISSING:
        return "(absent)"
    if value == UNKNOWN:
        return "(known after apply)"
    if value == SECRET:
        return "(secret)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) > width:
        keep = max(width - 20, 10)
        text = f"{text[: keep * 2 // 3]}…{text[-(keep // 3):]} ({len(text)} chars)"
    return text


NOTHING_TO_FLAG = (
    "Nothing to flag: no cluster, VPC or node group replaced, no API deleted or moved, no pods rolled, "
    "no IAM or network access widened, no data store deleted."
)


_SHOW_SAME = 5


def _api_cost_rows(report: DiffReport) -> list[tuple[str, ApiCost | None, ApiCost | None]]:
    b, h = report.base_stack_cost, report.head_stack_cost
    olds = {(a.kind, a.name): a for a in (b.apis if b else ())}
    news = {(a.kind, a.name): a for a in (h.apis if h else ())}
    return [(k[1], olds.get(k), news.get(k)) for k in sorted(set(olds) | set(news), key=lambda k: (k[1], k[0]))]


def _range(low: float, high: float) -> str:
    return money_range(low, high)


def _change(low: float, high: float) -> str:
    return money_range(*sorted((round(low, 2), round(high, 2))), signed=True)


def cost_rows(report: DiffReport) -> list[tuple[str, str, str, str, str]]:
    """The Infracost-style table: (item, baseline, change, new, how) per API, fixed costs, total;
    each money cell a range from min_replicas to max_replicas."""
    b, h = report.base_stack_cost, report.head_stack_cost
    if b is None or h is None:
        return []
    rows = []
    same: list[tuple[ApiCost, ApiCost]] = []
    for name, old, new in _api_cost_rows(report):
        if old is not None and new is not None and (old.low, old.high) == (new.low, new.high):
            same.append((old, new))
            continue
        ol, oh = (old.low, old.high) if old else (0.0, 0.0)
        nl, nh = (new.low, new.high) if new else (0.0, 0.0)
        how = new or old
        detail = ""
        if how is not None:
            if how.problem:
                detail = how.problem
            elif how.at_min and how.at_max:
                detail = f"min: {how.at_min.describe()}; max: {how.at_max.describe()}"
        rows.append((f"API {name}", _range(ol, oh) if old else "–", _change(nl - ol, nh - oh), _range(nl, nh) if new else "–", detail))
    if same:
        # APIs whose cost does not change, in one row: the table stays short for a thousand APIs.
        low, high = sum(a.low for a, _ in same), sum(a.high for a, _ in same)
        names = ", ".join(a.name for a, _ in same[:_SHOW_SAME]) + (f" and {len(same) - _SHOW_SAME} more" if len(same) > _SHOW_SAME else "")
        rows.append((f"{len(same)} API{'s' if len(same) != 1 else ''} unchanged", _range(low, high), _change(0, 0), _range(low, high), names))
    rows.append(("fixed cluster costs", _range(b.fixed_low, b.fixed_high), _change(h.fixed_low - b.fixed_low, h.fixed_high - b.fixed_high),
                 _range(h.fixed_low, h.fixed_high), "control plane, NAT, load balancers, system nodes, node groups' min_instances"))
    rows.append(("total", _range(b.low, b.high), _change(h.low - b.low, h.high - b.high), _range(h.low, h.high), ""))
    return rows


def _text_cost(report: DiffReport) -> list[str]:
    rows = cost_rows(report)
    h = report.head_stack_cost
    if not rows or h is None:
        return []
    header = ("item", "baseline", "change", "new", "how")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    out = [f"Monthly cost per API (USD, {h.region}, prices of {h.prices_date}; min_replicas – max_replicas, spot estimated):"]
    for r in [header, *rows]:
        out.append("  " + "  ".join(r[i].ljust(widths[i]) for i in range(4)) + (f"  {r[4]}" if r[4] else ""))
    workers = job_worker_rows(h)
    if workers:
        wide = [max(len(r[i]) for r in workers) for i in range(2)]
        out += [f"{JOB_WORKERS_TITLE}:", *(f"  {r[0].ljust(wide[0])}  {r[1].ljust(wide[1])}  {r[2]}".rstrip() for r in workers)]
    out += [f"  note: {n}" for n in h.notes]
    return out


def _summary_line(report: DiffReport) -> str:
    c = report.counts
    return (
        f"{c['create']} to create, {c['update']} to update, {c['replace']} to replace, "
        f"{c['delete']} to delete, {report.unchanged} unchanged"
    )


def _cost_line(report: DiffReport) -> str:
    if report.cost_error:
        return f"capacity bounds not estimated: {report.cost_error}"
    if report.base_cost is None or report.head_cost is None:
        return "capacity bounds not estimated"
    b, h = report.base_cost, report.head_cost
    return (
        f"capacity bounds (node groups from min_instances to max_instances) {money_range(b.low, b.high)} -> {money_range(h.low, h.high)} "
        f"(change {_delta(b, h)}; {h.region}, prices of {h.prices_date}, spot estimated)"
    )


def _delta(base: CostReport, head: CostReport) -> str:
    """HEAD minus BASE as a range: the changes of the low end and of the high end, smaller first."""
    ends = sorted((head.low - base.low, head.high - base.high))
    return money_range(*ends, signed=True)


def line_diff(old: Any, new: Any) -> list[str] | None:
    """The changed lines of two text values, as unified-diff lines (``@@`` hunks, 2 lines of
    context): for multi-line strings (a config file in a ConfigMap), and JSON documents written as
    strings (an IAM policy), which are pretty-printed first. None for any other pair (values then
    fold, see :func:`show`)."""
    if not (isinstance(old, str) and isinstance(new, str)) or {old, new} & {UNKNOWN, SECRET}:
        return None
    docs = [_pretty_json(old), _pretty_json(new)]
    if all(doc is not None for doc in docs):
        before, after = docs[0].splitlines(), docs[1].splitlines()  # type: ignore[union-attr]
    elif "\n" in old or "\n" in new:
        before, after = old.splitlines(), new.splitlines()
    else:
        return None
    return list(difflib.unified_diff(before, after, n=2, lineterm=""))[2:]


def _pretty_json(text: str) -> str | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) if isinstance(doc, (dict, list)) else None


def _change_lines(c: Change, width: int) -> list[str]:
    lines = line_diff(c.old, c.new)
    if lines is None:
        return [_change_line(c, width)]
    tail = "  [forces replacement]" if c.replaces else ""
    return [f"{c.path_text}: changed, line by line:{tail}", *(f"    {line}" for line in lines)]


def _change_line(c: Change, width: int) -> str:
    tail = "  [forces replacement]" if c.replaces else ""
    note = f"  ({c.note})" if c.note else ""
    return f"{c.path_text}: {show(c.old, width)} -> {show(c.new, width)}{note}{tail}"


def render_text(report: DiffReport) -> str:
    """Plain text, one block per changed resource."""
    out = [
        f"cortex diff: project {report.project}, stack {report.base_stack} -> {report.head_stack}",
        f"Plan: {_summary_line(report)}.",
        "",
        *(f"! {h.text}" for h in report.headline),
        *([] if report.headline else [NOTHING_TO_FLAG]),
    ]
    if report.summary:
        out += ["", "Cortex changes:"]
        for row in report.summary:
            out.append(f"  {_SIGN[row.op]} {row.section} {row.name}" + (f" ({row.kind})" if row.section == "api" else "")
                       + {"create": ": created", "delete": ": deleted", "update": ""}[row.op])
            for column, (old, new) in row.cells.items():
                if row.op == "update" and old != new:
                    out.append(f"      {column} {old or '–'} -> {new or '–'}")
                elif row.op != "update" and (new if row.op == "create" else old) is not None:
                    out.append(f"      {column} {new if row.op == 'create' else old}")
    out += ["", *_text_cost(report), _cost_line(report)]
    for d in report.resources:
        out.append("")
        out.append(f"{_SIGN[d.op]} {d.op} {d.type} {d.name}{_DELETE_FIRST if d.delete_first else ''}")
        out.extend(f"    because {r}" for r in d.reasons)
        out.extend(f"    {line}" for c in d.changes for line in _change_lines(c, _FOLD))
    return "\n".join(out) + "\n"


def render_json(report: DiffReport) -> str:
    """Deterministic JSON: raw values (secrets stay masked), keys sorted."""

    def value(v: Any) -> Any:
        return None if v is MISSING else v

    doc: dict[str, Any] = {
        "project": report.project,
        "base_stack": report.base_stack,
        "head_stack": report.head_stack,
        "summary": {**report.counts, "unchanged": report.unchanged},
        "resources": [
            {
                "urn": d.urn,
                "type": d.type,
                "name": d.name,
                "op": d.op,
                "reasons": list(d.reasons),
                "delete_before_replace": d.delete_first,
                "changes": [
                    {
                        "path": c.path_text,
                        "kind": c.kind,
                        "old": value(c.old),
                        "new": value(c.new),
                        "replaces": c.replaces,
                        **({"note": c.note} if c.note else {}),
                    }
                    for c in d.changes
                ],
            }
            for d in report.resources
        ],
        "cost": {
            "error": report.cost_error,
            "base": report.base_cost.to_json() if report.base_cost else None,
            "head": report.head_cost.to_json() if report.head_cost else None,
        },
    }
    doc["headline"] = [{"rule": h.rule, "text": h.text, "anchor": h.target} for h in report.headline]
    doc["cortex"] = [
        {"section": r.section, "name": r.name, "kind": r.kind, "op": r.op, "anchor": r.target,
         "fields": {c: {"old": o, "new": n} for c, (o, n) in r.cells.items() if o is not None or n is not None}}
        for r in report.summary
    ]
    doc["cost_per_api"] = {
        "base": report.base_stack_cost.to_json() if report.base_stack_cost else None,
        "head": report.head_stack_cost.to_json() if report.head_stack_cost else None,
    }
    if report.base_stack_cost and report.head_stack_cost:
        doc["cost_per_api"]["delta"] = {
            "low": round(report.head_stack_cost.low - report.base_stack_cost.low, 2),
            "high": round(report.head_stack_cost.high - report.base_stack_cost.high, 2),
        }
    if report.base_cost and report.head_cost:
        doc["cost"]["delta"] = {
            "low": round(report.head_cost.low - report.base_cost.low, 2),
            "high": round(report.head_cost.high - report.base_cost.high, 2),
        }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# Pulumi's marker for a value only known after apply, as its serialised states carry it
# (sdk/go/common/resource/plugin: UnknownStringValue), and what `pulumi preview --json` shows for secrets.
PULUMI_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
PULUMI_SECRET = "[secret]"
_DETAILED_KIND = {"added": "add", "removed": "delete", "changed": "update"}


def _pulumi_value(value: Any) -> Any:
    if value == UNKNOWN:
        return PULUMI_UNKNOWN
    if value == SECRET:
        return PULUMI_SECRET
    if isinstance(value, dict):
        return {k: _pulumi_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pulumi_value(v) for v in value]
    return value


def _provider_reference(urn: str) -> str:
    """A provider as Pulumi references it, ``<provider URN>::<provider ID>``: a plan knows no IDs,
    so the ID is the unknown marker, as Pulumi's own preview shows a provider not created yet."""
    return f"{urn}::{PULUMI_UNKNOWN}"


def _sorted_maps(value: Any) -> Any:
    """Keys of every object sorted: what encoding/json does to a Go map (inputs, config, ...)."""
    if isinstance(value, dict):
        return {k: _sorted_maps(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_maps(v) for v in value]
    return value


def _pulumi_state(r: dict[str, Any]) -> dict[str, Any]:
    """A plan resource as Pulumi's ``apitype.ResourceV3`` (the fields a plan knows; inputs only,
    no outputs: this is a preview)."""
    state: dict[str, Any] = {"urn": r["urn"], "custom": bool(r.get("custom", True)), "type": r["type"],
                             "inputs": _sorted_maps(_pulumi_value(r["inputs"]))}
    # In ResourceV3's field order (encoding/json writes a struct's fields in declaration order).
    for key, name in (("parent", "parent"), ("dependencies", "dependencies"), ("provider", "provider"),
                      ("property_dependencies", "propertyDependencies"), ("aliases", "aliases")):
        if r.get(key):
            value = r[key]
            state[name] = _provider_reference(value) if key == "provider" else _sorted_maps(value)
    return state


def render_pulumi_json(report: DiffReport) -> str:
    """The shape of ``pulumi preview --json`` (Pulumi's ``PreviewDigest``): ``config``, one step per
    changed resource (``op``, ``urn``, ``provider``, ``oldState`` / ``newState`` as ``ResourceV3``,
    ``diffReasons``, ``replaceReasons``, ``detailedDiff``) and ``changeSummary`` with the ``same``
    count; unknowns as Pulumi's unknown marker, secrets as ``[secret]``."""
    olds, news = report.base_resources, report.head_resources
    steps = []
    for d in report.resources:
        old, new = olds.get(d.urn) or olds.get(report.renamed_from.get(d.urn, "")), news.get(d.urn)
        step: dict[str, Any] = {"op": d.op, "urn": d.urn}
        provider = (new or old or {}).get("provider")
        if provider:
            step["provider"] = _provider_reference(provider)
        if old is not None and d.op != "create":
            step["oldState"] = _pulumi_state(old)
        if new is not None and d.op != "delete":
            step["newState"] = _pulumi_state(new)
        keys = sorted({str(c.path[0]) for c in d.changes})
        if keys:
            step["diffReasons"] = keys
        replace_keys = sorted({str(c.path[0]) for c in d.changes if c.replaces})
        if replace_keys:
            step["replaceReasons"] = replace_keys
        detailed = {
            c.path_text: {"kind": _DETAILED_KIND[c.kind] + ("-replace" if c.replaces else ""), "inputDiff": True}
            for c in d.changes
        }
        step["detailedDiff"] = {k: detailed[k] for k in sorted(detailed)} or None
        steps.append(step)
    # Go maps (config, detailedDiff, changeSummary) come out key-sorted and, empty, left out
    # (`omitempty`), as in the samples of Pulumi's real output (tests/plan/test_pulumi_sample.py).
    config = {k: PULUMI_SECRET if v == SECRET else v for k, v in sorted(report.head_config.items())}
    summary = {op: n for op, n in report.counts.items() if n}
    if report.unchanged:
        summary["same"] = report.unchanged
    doc: dict[str, Any] = {"config": config} if config else {}
    doc.update({"steps": steps, "changeSummary": {k: summary[k] for k in sorted(summary)}})
    return json.dumps(doc, indent=4, ensure_ascii=False) + "\n"


def _md(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "&#124;")


def _md_code(text: str) -> str:
    return f"<code>{_md(text)}</code>"


def render_markdown(report: DiffReport, limit: int = MARKDOWN_LIMIT) -> str:
    """Markdown for one pull-request comment, at most ``limit`` characters.

    Full detail first (a collapsed ``<details>`` per resource with a table of changed inputs); if
    that is too long, the tables lose their values, then the resources their details, then the list
    is cut, and a line says what was left out.
    """
    for level in ("values", "paths", "names"):
        text = _markdown(report, level, None)
        if len(text) <= limit:
            return text
    # Names only and still too long: keep as many resources as fit, then as many summary rows.
    rows = len(report.summary)
    if len(_markdown(report, "names", 0)) > limit:
        lo, hi = 0, rows
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(_markdown(report, "names", 0, mid)) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return _markdown(report, "names", 0, lo)
    lo, hi = 0, len(report.resources)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(_markdown(report, "names", mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return _markdown(report, "names", lo)


_API_COLUMNS = ("image", "replicas", "compute", "max_concurrency", "max_queue_length", "endpoint", "node_groups", "weights")
_GROUP_COLUMNS = ("instance_types", "min_instances", "max_instances", "spot")
_SECTIONS = (("replace", "to replace"), ("update", "to update"), ("create", "to create"), ("delete", "to delete"))


_HEADLINE_LINES = 25  # more would push the rest out of a reviewer's 30 seconds (and the comment)


def _md_headline(report: DiffReport) -> list[str]:
    if not report.headline:
        return [f"**{_md(NOTHING_TO_FLAG)}**", ""]
    shown = report.headline[:_HEADLINE_LINES]
    more = len(report.headline) - len(shown)
    tail = [f"- … and {more} more (every line: `cortex diff --format text`)"] if more else []
    return ["**Do not miss:**", "", *(f"- ⚠️ [{_md(h.text)}](#{h.target})" for h in shown), *tail, ""]


def _md_cell(row: SummaryRow, column: str) -> str:
    old, new = row.cells[column]
    if row.op == "update":
        if old == new:
            return _md(old) if old is not None else "–"
        return f"**{_md(old or '–')} → {_md(new or '–')}**"
    value = new if row.op == "create" else old
    if value is None:
        return "–"
    return _md(value) if row.op == "create" else f"~~{_md(value)}~~"


_OPS = {"create": "created", "update": "changed", "delete": "deleted"}


def _md_summary(report: DiffReport, rows: int | None) -> list[str]:
    shown = report.summary if rows is None else report.summary[:rows]
    out: list[str] = []
    for section, title, columns in (("api", "APIs", _API_COLUMNS), ("node group", "Node groups", _GROUP_COLUMNS)):
        group = [r for r in shown if r.section == section]
        if not group:
            continue
        used = [c for c in columns if any(r.cells[c] != (None, None) for r in group)]
        out += [f"#### {title}", "", "| " + " | ".join([section, "change", *(c.replace("_", " ") for c in used)]) + " |",
                "|" + "---|" * (2 + len(used))]
        for r in group:
            name = f'<a id="{r.target}"></a>{_md_code(r.name)}' + (f" {_md(r.kind)}" if section == "api" else "")
            out.append("| " + " | ".join([name, _OPS[r.op], *(_md_cell(r, c) for c in used)]) + " |")
        out.append("")
    if rows is not None and rows < len(report.summary):
        out += [f"_{len(report.summary) - rows} more changed APIs and node groups are not listed (see `cortex diff --format text`)._", ""]
    return out


def _md_api_cost(report: DiffReport) -> list[str]:
    rows = cost_rows(report)
    h = report.head_stack_cost
    if not rows or h is None:
        return [_md_cost(report), ""]
    out = [f"#### Monthly cost ({_md(h.region)}, USD; from min_replicas to max_replicas)", "",
           "| | baseline | change | new | how |", "|---|---|---|---|---|"]
    for item, base, change, new, how in rows:
        bold = "**" if item == "total" else ""
        out.append(f"| {bold}{_md(item)}{bold} | {base} | {bold}{change}{bold} | {new} | {_md(how)} |")
    workers = job_worker_rows(h)
    if workers:
        title, _, rest = JOB_WORKERS_TITLE.partition(" (")
        out += ["", f"**{_md(title)}** ({_md(rest)}", "", "| job API | per worker-hour | how |", "|---|---|---|"]
        out += [f"| {_md(api)} | {_md(hourly)} | {_md(how)} |" for api, hourly, how in workers]
    out += ["", "<details><summary>how this is estimated</summary>", "",
            f"Public prices of {_md(h.prices_date)}. " + " ".join(_md(n[0].upper() + n[1:]) + "." for n in h.notes), "",
            _md_cost(report, "Capacity bounds (every node group from min_instances to max_instances)"), "", "</details>", ""]
    return out


def _markdown(report: DiffReport, level: str, keep: int | None, rows: int | None = None) -> str:
    out = [
        f"### cortex diff: `{_md(report.project)}` stack `{_md(report.base_stack)}` → `{_md(report.head_stack)}`",
        "",
        *_md_headline(report),
        f"**{_summary_line(report)}**",
        "",
        *_md_summary(report, rows),
        *_md_api_cost(report),
    ]
    if report.resources:
        out += ["#### Resources", ""]
    if not report.resources:
        out.append("No resource changes.")
        return "\n".join(out) + "\n"
    # Most consequential first; `keep` cuts the list in that order.
    ordered = [d for op, _ in _SECTIONS for d in report.resources if d.op == op]
    shown = ordered if keep is None else ordered[:keep]
    for op, heading in _SECTIONS:
        group = [d for d in shown if d.op == op]
        if not group:
            continue
        out += [f"#### {report.counts[op]} {heading}", ""]
        for d in group:
            title = f"{_md_code(d.type)} {_md_code(d.name)}"
            mark = f'<a id="{anchor(d.urn)}"></a>'
            if level == "names" or (not d.changes and not d.reasons):
                out.append(f"- {mark}{title}")
                continue
            out.append(mark)
            inputs = f"{len(d.changes)} input{'s' if len(d.changes) != 1 else ''}"
            out += [f"<details><summary>{title} ({inputs})</summary>", ""]
            out += [f"- replaced because {_md(r)}" for r in d.reasons]
            out += [f"- {_md(_DELETE_FIRST.strip(' ()'))}"] if d.delete_first else []
            if level == "values" and d.changes:
                out += [*([""] if d.reasons else []), "| input | before | after |", "|---|---|---|"]
                by_line = []
                for c in d.changes:
                    mark = " **(forces replacement)**" if c.replaces else ""
                    note = f"<br>{_md(c.note)}" if c.note else ""
                    lines = line_diff(c.old, c.new)
                    if lines is None:
                        out.append(f"| {_md_code(c.path_text)}{mark} | {_md_code(show(c.old))} | {_md_code(show(c.new))}{note} |")
                    else:
                        out.append(f"| {_md_code(c.path_text)}{mark} | changed lines below | |")
                        by_line.append((c, lines))
                for c, lines in by_line:
                    # A fence longer than any backtick run in the text, so the text cannot end it.
                    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", "\n".join(lines))), default=0))
                    out += ["", f"<details><summary>{_md_code(c.path_text)}, line by line</summary>", "",
                            f"{fence}diff", *lines, fence, "", "</details>"]
            else:
                out += [f"- {_md_code(c.path_text)}{' **(forces replacement)**' if c.replaces else ''}" for c in d.changes]
            out += ["", "</details>", ""]
        out.append("")
    left = []
    if level == "paths":
        left.append("before/after values are left out to fit one comment (see `cortex diff --format text`)")
    if level == "names":
        left.append("per-input details are left out to fit one comment (see `cortex diff --format text`)")
    if keep is not None and keep < len(ordered):
        left.append(f"{len(ordered) - keep} more changed resources are not listed")
    if left:
        out.append(f"_Left out: {'; '.join(left)}._")
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


def _md_cost(report: DiffReport, label: str = "Monthly cost") -> str:
    if report.base_cost is None or report.head_cost is None:
        return f"**{label}:** {_md(_cost_line(report))}"
    b, h = report.base_cost, report.head_cost
    lines = [
        f"**{label}:** {money_range(b.low, b.high)} → {money_range(h.low, h.high)} "
        f"(change **{_delta(b, h)}**; {_md(h.region)}, public on-demand prices of {h.prices_date}, spot estimated)",
    ]
    before = {x.item: x for x in b.lines}
    after = {x.item: x for x in h.lines}
    items = [*before, *(k for k in after if k not in before)]
    changed = [k for k in items if before.get(k) != after.get(k)]
    if changed:
        lines += ["", "<details><summary>cost items that change</summary>", "", "| item | before | after |", "|---|---|---|"]
        for k in changed:
            x, y = before.get(k), after.get(k)
            lines.append(
                f"| {_md(k.strip())} | {money_range(x.low, x.high) if x else '–'} | {money_range(y.low, y.high) if y else '–'} |"
            )
        lines += ["", "</details>"]
    return "\n".join(lines)


def diff_command(base: Path, head: Path, fmt: str = "text") -> str:
    """Output of ``cortex diff BASE.json HEAD.json --format markdown|text|json|pulumi-json``.

    The cost of each plan is estimated in its own ``aws:region``; when that is not possible the
    diff is still shown, with a line saying why the cost is missing.
    """
    from cortex_iac.plan.plan import load_plan

    renderers = {"markdown": render_markdown, "text": render_text, "json": render_json, "pulumi-json": render_pulumi_json}
    if fmt not in renderers:
        raise PlanError(f"--format {fmt!r} is not known; allowed: {', '.join(renderers)}")
    base_plan, head_plan = load_plan(base), load_plan(head)
    report = preview_report(base_plan, head_plan)
    return renderers[fmt](report)


def preview_report(base_plan: dict[str, Any], head_plan: dict[str, Any]) -> DiffReport:
    """The diff of two plans with its headline, Cortex summary and both cost estimates."""
    report = diff_plans(base_plan, head_plan)
    report.headline = headlines(base_plan, head_plan, report)
    report.summary = summary(base_plan, head_plan)
    try:
        report.base_stack_cost = stack_cost(base_plan)
        report.head_stack_cost = stack_cost(head_plan)
    except PlanError as e:  # no region to price in
        report.cost_error = str(e)
    try:
        report.base_cost = cost_of(base_plan, partial=True)
        report.head_cost = cost_of(head_plan, partial=True)
    except PlanError as e:
        report.cost_error = str(e)
    return report
