"""What a reviewer reads first: the headline (what must not be missed) and the spec-level summary.

Both are computed from the two plans and their resource diff, by resource type and by the Cortex
view of :mod:`cortex_iac.plan.views`, never by API kind, so kinds added later are covered:

Headline rules, in this order (each line links to the details it comes from):

1. cluster or VPC replaced or deleted (``eks:index:Cluster``, ``aws:eks/cluster:Cluster``,
   ``aws:ec2/vpc:Vpc``): downtime for every API;
2. node groups removed, or their nodes replaced: a Karpenter pool or EKS node group replaced or
   deleted, or a group's instance types or capacity type changed, or its EC2NodeClass changed
   (Karpenter replaces drifted nodes);
3. APIs deleted (any ``cortex:api:*`` component but the runtime image) or whose endpoint changes;
4. changes that roll every pod of an API: an update or replacement under a Deployment's,
   StatefulSet's or DaemonSet's ``spec.template`` (not when only its provider is replaced: rule 1
   says it then);
5. IAM widened: a policy document (any JSON input with a ``Statement``) that allows an action on a
   resource it did not allow before (``*`` patterns count as covering), or a policy attached to an
   existing API or role;
6. network opened: a CIDR list (any input or annotation whose key names ``cidr``) that gains an
   entry, or an ingress rule created in an existing security group;
7. data stores deleted or replaced (their contents go): queues, buckets, tables, volumes, file
   systems, databases, repositories, log groups, KMS keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cortex_iac.plan.values import SECRET, UNKNOWN
from cortex_iac.plan.views import ApiView, api_views, node_group_views

if TYPE_CHECKING:
    from cortex_iac.plan.diff import DiffReport, ResourceDiff

_CLUSTERS = {"eks:index:Cluster": "EKS cluster", "aws:eks/cluster:Cluster": "EKS cluster", "aws:ec2/vpc:Vpc": "VPC"}
_NODE_TYPES = ("kubernetes:karpenter.sh/v1:NodePool", "aws:eks/nodeGroup:NodeGroup", "eks:index:ManagedNodeGroup")
_NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
_POD_OWNERS = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet")
DATA_STORES = {
    "aws:sqs/queue:Queue": "queue",
    "aws:s3/bucket:Bucket": "bucket",
    "aws:s3/bucketV2:BucketV2": "bucket",
    "aws:dynamodb/table:Table": "table",
    "kubernetes:core/v1:PersistentVolumeClaim": "volume claim",
    "kubernetes:core/v1:PersistentVolume": "volume",
    "aws:ebs/volume:Volume": "volume",
    "aws:efs/fileSystem:FileSystem": "file system",
    "aws:rds/instance:Instance": "database",
    "aws:rds/cluster:Cluster": "database cluster",
    "aws:elasticache/cluster:Cluster": "cache",
    "aws:ecr/repository:Repository": "image repository",
    "aws:cloudwatch/logGroup:LogGroup": "log group",
    "aws:kms/key:Key": "KMS key",
}
_INGRESS_RULES = ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:ec2/securityGroupRule:SecurityGroupRule")
_ATTACHMENTS = ("aws:iam/rolePolicyAttachment:RolePolicyAttachment",)
_SHOW = 3  # items named per headline line before "and N more"


def anchor(key: str) -> str:
    """A stable HTML id for a resource URN or a summary row (``cortex-`` and 10 hex digits)."""
    return "cortex-" + hashlib.sha256(key.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Headline:
    """One line of the headline: its rule (``cluster``, ``node-group``, ``api``, ``pods``, ``iam``,
    ``network``, ``data``), the text (markdown-free), and the anchor of the details it links to."""

    rule: str
    text: str
    target: str


@dataclass(frozen=True)
class SummaryRow:
    """One API or node group that is created, changed or deleted: ``cells`` maps each column to
    (before, after); None where absent or not applicable."""

    section: str  # "api" or "node group"
    name: str
    kind: str
    op: str  # create, update, delete
    cells: dict[str, tuple[str | None, str | None]]
    target: str

    @property
    def changed(self) -> list[str]:
        """The columns whose value changes."""
        return [c for c, (old, new) in self.cells.items() if old != new]


API_COLUMNS = ("image", "replicas", "compute", "max_concurrency", "max_queue_length", "endpoint", "node_groups", "weights")
NODE_GROUP_COLUMNS = ("instance_types", "min_instances", "max_instances", "spot")


def summary(base: dict[str, Any], head: dict[str, Any]) -> list[SummaryRow]:
    """APIs, then node groups, that differ between the plans (unchanged ones are left out)."""
    rows: list[SummaryRow] = []
    olds, news = _by_name(api_views(base)), _by_name(api_views(head))
    for key in sorted(set(olds) | set(news)):
        a, b = olds.get(key), news.get(key)
        row = _row("api", key[1], (b or a).kind, a.fields() if a else None, b.fields() if b else None,  # type: ignore[union-attr]
                   API_COLUMNS)
        if row is not None:
            rows.append(row)
    old_groups, new_groups = node_group_views(base), node_group_views(head)
    for name in sorted(set(old_groups) | set(new_groups)):
        g, h = old_groups.get(name), new_groups.get(name)
        row = _row("node group", name, "node group", g.fields() if g else None, h.fields() if h else None,
                   NODE_GROUP_COLUMNS)
        if row is not None:
            rows.append(row)
    return rows


def _by_name(views: dict[str, ApiView]) -> dict[tuple[str, str], ApiView]:
    return {(v.kind, v.name): v for v in views.values()}


def _row(section: str, name: str, kind: str, old: dict[str, str | None] | None, new: dict[str, str | None] | None,
         columns: tuple[str, ...]) -> SummaryRow | None:
    op = "create" if old is None else "delete" if new is None else "update"
    cells = {c: ((old or {}).get(c), (new or {}).get(c)) for c in columns}
    if op == "update" and all(o == n for o, n in cells.values()):
        return None
    return SummaryRow(section, name, kind, op, cells, anchor(f"{section}:{kind}:{name}"))


def headlines(base: dict[str, Any], head: dict[str, Any], report: DiffReport) -> list[Headline]:
    """The headline lines (module docstring), most severe first."""
    olds = {r["urn"]: r for r in base.get("resources", [])}
    news = {r["urn"]: r for r in head.get("resources", [])}
    diffs = report.resources
    out: list[Headline] = []
    out += _cluster_lines(diffs)
    out += _node_group_lines(base, head, diffs, news)
    out += _api_lines(base, head, diffs)
    out += _pod_lines(diffs, olds, news)
    out += _iam_lines(diffs, olds, news)
    out += _network_lines(diffs, olds, news)
    out += _data_lines(diffs)
    return out


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f" and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


def _cluster_lines(diffs: list[ResourceDiff]) -> list[Headline]:
    out = []
    for d in diffs:
        what = _CLUSTERS.get(d.type)
        if what is None or d.op not in ("replace", "delete"):
            continue
        if d.op == "delete":
            text = f"{what} {d.name} is deleted: every API on it goes away"
        else:
            why = [f"{c.path_text} {c.note}" if c.note and UNKNOWN in (c.old, c.new) else f"{c.path_text} {_val(c.old)} → {_val(c.new)}"
                   for c in d.changes if c.replaces]
            because = f" ({_names(why)})" if why else ""
            text = f"{what} {d.name} is replaced{because}: downtime, every API is down until the new cluster and its nodes are up"
        out.append(Headline("cluster", text, anchor(d.urn)))
    return out


def _val(value: Any) -> str:
    if value == UNKNOWN:
        return "(known after apply)"
    if value == SECRET:
        return "(secret)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "…"


def _group_of(r: dict[str, Any] | None) -> str | None:
    labels = (((r or {}).get("inputs") or {}).get("metadata") or {}).get("labels")
    group = labels.get("cortex.dev/node-group") if isinstance(labels, dict) else None
    return group if isinstance(group, str) else None


def _node_group_lines(base: dict[str, Any], head: dict[str, Any], diffs: list[ResourceDiff],
                      news: dict[str, dict[str, Any]]) -> list[Headline]:
    old_groups, new_groups = node_group_views(base), node_group_views(head)
    out = []
    for name in old_groups:
        if name not in new_groups:
            out.append(Headline("node-group", f"node group {name} is removed: its nodes are drained and terminated",
                                anchor(f"node group:node group:{name}")))
    by_group: dict[str, list[str]] = {}
    first_urn: dict[str, str] = {}
    for d in diffs:
        if d.op not in ("replace", "update") or d.type not in (*_NODE_TYPES, _NODE_CLASS):
            continue
        if only_provider(d):
            continue
        group = _group_of(news.get(d.urn)) or d.name
        if group not in old_groups or group not in new_groups:
            continue
        first_urn.setdefault(group, d.urn)
        if d.op == "replace":
            by_group.setdefault(group, []).append(f"{d.name} is replaced")
        elif d.type == _NODE_CLASS:
            by_group.setdefault(group, []).append("its EC2NodeClass changes (Karpenter replaces drifted nodes)")
    for name, g in new_groups.items():
        old = old_groups.get(name)
        if old is None:
            continue
        if old.instance_types != g.instance_types:
            by_group.setdefault(name, []).insert(
                0, f"instance types {', '.join(old.instance_types)} → {', '.join(g.instance_types)}")
        if old.spot != g.spot:
            by_group.setdefault(name, []).insert(0, f"spot {'yes' if old.spot else 'no'} → {'yes' if g.spot else 'no'}")
    for name, reasons in sorted(by_group.items()):
        unique = list(dict.fromkeys(reasons))
        # The summary row when the group's Cortex fields change, else the resource that changes.
        in_summary = old_groups[name].fields() != new_groups[name].fields()
        target = anchor(f"node group:node group:{name}") if in_summary or name not in first_urn else anchor(first_urn[name])
        out.append(Headline("node-group", f"node group {name}: its nodes are replaced and their pods rescheduled ({_names(unique)})",
                            target))
    return out


def only_provider(d: ResourceDiff) -> bool:
    """Whether a replacement comes only from a replaced provider (the cluster's headline says it)."""
    return d.op == "replace" and all(r.startswith("its provider") for r in d.reasons) and not any(c.replaces for c in d.changes)


def _api_lines(base: dict[str, Any], head: dict[str, Any], diffs: list[ResourceDiff]) -> list[Headline]:
    olds, news = _by_name(api_views(base)), _by_name(api_views(head))
    out = []
    for key, a in sorted(olds.items()):
        target = anchor(f"api:{a.kind}:{a.name}")
        b = news.get(key)
        if b is None:
            where = f" (clients of {a.endpoint} get 404s)" if a.endpoint else ""
            out.append(Headline("api", f"API {a.name} ({a.kind}) is deleted{where}", target))
        elif a.endpoint != b.endpoint:
            out.append(Headline("api", f"API {a.name}: endpoint {a.endpoint or '(none)'} → {b.endpoint or '(none)'}: "
                                "clients of the old path break", target))
    return out


def _owner(urn: str, resources: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    seen = 0
    r = resources.get(urn)
    while r is not None and seen < 50:
        if r["type"].startswith("cortex:api:"):
            return r
        r = resources.get(r.get("parent") or "")
        seen += 1
    return None


def _pod_lines(diffs: list[ResourceDiff], olds: dict[str, dict[str, Any]], news: dict[str, dict[str, Any]]) -> list[Headline]:
    out = []
    for d in diffs:
        if d.type not in _POD_OWNERS or d.op not in ("update", "replace") or only_provider(d):
            continue
        template = [c for c in d.changes if c.path[:2] == ("spec", "template")]
        if not template and d.op != "replace":
            continue
        owner = _owner(d.urn, news)
        who = f"API {owner['name']}" if owner else f"{d.type.rsplit(':', 1)[1]} {d.name}"
        what = [_short_change(c.path, c.old, c.new) for c in template] or list(d.reasons)
        how = "replaced" if d.op == "replace" else "replaced by a rolling update"
        out.append(Headline("pods", f"{who}: every pod is {how} ({_names(list(dict.fromkeys(what)))})", anchor(d.urn)))
    return out


def _short_change(path: tuple[Any, ...], old: Any, new: Any) -> str:
    names = [str(p) for p in path[2:] if not isinstance(p, int)]
    if names[-1:] == ["image"] and isinstance(old, str) and isinstance(new, str):
        return f"image {_val(old)} → {_val(new)}"
    if "annotations" in names or "labels" in names:
        return "pod " + ("annotations" if "annotations" in names else "labels")
    rest = names[1:] if names[:1] == ["spec"] else names
    return ".".join(rest[:2]) or "pod template"


# ---- IAM ----------------------------------------------------------------------------------------


def _policy(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and "Statement" in value:
        return value
    if not isinstance(value, str) or "Statement" not in value:
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "Statement" in doc else None


def grants(policy: dict[str, Any]) -> set[tuple[str, str, str]]:
    """The (action, resource, condition) triples a policy's Allow statements grant (``NotAction`` /
    ``NotResource`` as ``NOT <pattern>``; a statement without resources, a trust policy, by
    principal; the condition as JSON, "" for none)."""
    statements = policy.get("Statement")
    statements = statements if isinstance(statements, list) else [statements]
    out: set[tuple[str, str, str]] = set()
    for s in statements:
        if not isinstance(s, dict) or s.get("Effect") != "Allow":
            continue
        actions = _strings(s.get("Action")) + [f"NOT {a}" for a in _strings(s.get("NotAction"))]
        resources = _strings(s.get("Resource")) + [f"NOT {r}" for r in _strings(s.get("NotResource"))]
        if not resources and "Principal" in s:
            resources = [f"principal {json.dumps(s['Principal'], sort_keys=True)}"]
        condition = json.dumps(s["Condition"], sort_keys=True) if s.get("Condition") else ""
        out |= {(a, r, condition) for a in actions for r in resources or ["*"]}
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _matches(pattern: str, text: str, *, fold: bool) -> bool:
    # IAM's wildcards: * (any run) and ? (one character); nothing else is special.
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE if fold else 0) is not None


def _covers(old: tuple[str, str, str], new: tuple[str, str, str]) -> bool:
    if old[0].startswith("NOT ") or old[1].startswith("NOT "):
        return old == new
    # A grant with a condition is covered by the same grant with that condition or with none.
    return (old[2] in ("", new[2]) and _matches(old[0], new[0], fold=True) and _matches(old[1], new[1], fold=False))


def widened(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The grants of ``new`` that no grant of ``old`` covers, sorted."""
    before = grants(old)
    return sorted(g for g in grants(new) if not any(_covers(o, g) for o in before))


def _policies(value: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], dict[str, Any]]:
    doc = _policy(value)
    if doc is not None:
        return {path: doc}
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(_policies(v, (*path, str(k))))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(_policies(v, (*path, str(i))))
    return out


def _iam_lines(diffs: list[ResourceDiff], olds: dict[str, dict[str, Any]], news: dict[str, dict[str, Any]]) -> list[Headline]:
    out = []
    for d in diffs:
        if d.op in ("update", "replace") and d.urn in olds and d.urn in news:
            before, after = _policies(olds[d.urn]["inputs"]), _policies(news[d.urn]["inputs"])
            gained: list[tuple[str, str, str]] = []
            for path, doc in after.items():
                gained += widened(before.get(path, {"Statement": []}), doc)
            if gained:
                owner = _owner(d.urn, news)
                of = f" of API {owner['name']}" if owner else ""
                items = [f"{a} on {r}" + (" (with a condition)" if c else "") for a, r, c in gained]
                out.append(Headline("iam", f"IAM widened: {d.type.rsplit(':', 1)[1]} {d.name}{of} now also allows {_names(items)}",
                                    anchor(d.urn)))
        elif d.op == "create" and d.type in _ATTACHMENTS:
            r = news.get(d.urn) or {}
            if (r.get("parent") or "") in olds and not (r.get("parent") or "").endswith("pulumi:pulumi:Stack"):
                owner = _owner(d.urn, news)
                of = f"API {owner['name']}" if owner else f"{(r.get('parent') or '').split('::')[-1]}"
                arn = (r.get("inputs") or {}).get("policyArn")
                out.append(Headline("iam", f"IAM widened: {of} gets policy {_val(arn)} attached", anchor(d.urn)))
    return out


# ---- network ------------------------------------------------------------------------------------


# Keys naming an address range that says what a network is, not who may reach it.
_ADDRESS_KEYS = {"cidrblock", "ipv6cidrblock", "destinationcidrblock", "serviceipv4cidr", "serviceipv6cidr",
                 "kubernetesserviceipaddressrange", "ipv4netmasklength", "vpccidr", "vpc_cidr"}
# Resources whose CIDRs are their own address space.
_ADDRESS_TYPES = ("aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/route:Route", "aws:ec2/routeTable:RouteTable")


def cidrs(value: Any, under: bool = False) -> set[str]:
    """Every CIDR in an input tree under a key naming ``cidr`` or ``sourceRanges`` (lists, or
    comma-separated / JSON strings as in ALB annotations), but for address-space keys
    (``cidrBlock``, a cluster's service range)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            key = str(k).lower()
            if key in _ADDRESS_KEYS:
                continue
            out |= cidrs(v, under or "cidr" in key or "sourceranges" in key)
    elif isinstance(value, list):
        for v in value:
            out |= cidrs(v, under)
    elif isinstance(value, str) and under:
        out |= set(re.findall(r"[0-9a-fA-F:.]+/\d{1,3}", value))
    return out


def _network_lines(diffs: list[ResourceDiff], olds: dict[str, dict[str, Any]], news: dict[str, dict[str, Any]]) -> list[Headline]:
    out = []
    for d in diffs:
        if d.type in _ADDRESS_TYPES:
            continue
        if d.op in ("update", "replace") and d.urn in olds and d.urn in news:
            gained = sorted(cidrs(news[d.urn]["inputs"]) - cidrs(olds[d.urn]["inputs"]))
            if gained:
                out.append(Headline("network", f"network opened: {d.type.rsplit(':', 1)[1]} {d.name} now admits {_names(gained)}",
                                    anchor(d.urn)))
        elif d.op == "create" and d.type in _INGRESS_RULES:
            inputs = (news.get(d.urn) or {}).get("inputs") or {}
            if d.type.endswith("SecurityGroupRule") and inputs.get("type") != "ingress":
                continue
            sources = sorted(cidrs(inputs)) or ["another security group"]
            out.append(Headline("network", f"network opened: new ingress rule {d.name} admits {_names(sources)}", anchor(d.urn)))
    return out


def _data_lines(diffs: list[ResourceDiff]) -> list[Headline]:
    out = []
    for d in diffs:
        what = DATA_STORES.get(d.type)
        if what is None or d.op not in ("delete", "replace"):
            continue
        how = "deleted" if d.op == "delete" else "replaced (a new, empty one)"
        out.append(Headline("data", f"data store deleted: {what} {d.name} is {how}; what it holds is lost", anchor(d.urn)))
    return out
