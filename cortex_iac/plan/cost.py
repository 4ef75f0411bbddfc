"""`cortex cost`: the monthly cost range of a plan, from a bundled table of public AWS prices.

What is priced, per resource in the plan (USD per month of ``hours_per_month`` hours, 730):

- Karpenter node groups (``kubernetes:karpenter.sh/v1:NodePool``, grouped by their
  ``cortex.dev/node-group`` label, else by name). Each pool is priced by the first type of its
  ``node.kubernetes.io/instance-type`` requirement (the group's ``instance_type``). A static pool
  (``spec.replicas``) is the floor: always running. A dynamic pool adds between 0 and the number of
  instances its ``spec.limits`` allow of that type (the smallest of ``nodes`` and each of cpu,
  memory, ``nvidia.com/gpu``, ``aws.amazon.com/neuron`` divided by one instance's capacity).
  Low end: the floor, at the spot ESTIMATE when the pool prefers spot. High end: floor plus the
  dynamic maximum, all on-demand (Karpenter falls back to on-demand when spot is short).
- Root volumes from the pool's ``EC2NodeClass`` (``blockDeviceMappings``): GB-month of the
  volume type, plus provisioned IOPS / throughput above gp3's free baseline (3000 IOPS, 125 MiB/s)
  and io1 IOPS.
- EKS managed node groups (``aws:eks/nodeGroup:NodeGroup``, ``eks:index:ManagedNodeGroup``):
  ``scalingConfig`` min..max of the first of ``instanceTypes``; ``capacityType: SPOT`` gets the
  spot estimate at the low end; ``diskSize`` (EKS's default 20 GiB gp2 when absent and no launch
  template) or the launch template's root volume.
- EKS control planes (``eks:index:Cluster``, ``aws:eks/cluster:Cluster``), standard support.
- NAT gateways (``aws:ec2/natGateway:NatGateway``), hourly charge.
- Load balancers, hourly charge: one ALB per IngressGroup (``alb.ingress.kubernetes.io/group.name``
  or the group of the class's ``IngressClassParams``) and one per ungrouped ALB Ingress; one per
  ``Service`` of type ``LoadBalancer``; one per ``aws:lb/loadBalancer:LoadBalancer``.

Not priced (said in every report): data transfer, NAT and LCU data processing, CloudWatch, KMS
requests, SQS requests (an AsyncAPI's queues cost per request: KEDA's polling and the workers' long
polls, see docs/benchmarks.md), S3 storage and requests (an AsyncAPI's payloads and results),
DynamoDB on-demand requests, storage and backups (the job APIs' tables: their cost follows the jobs
submitted, which a plan cannot know), EBS snapshots, and anything a Helm chart creates at deploy time.

No number is made up. An item the price table has no price for (an instance type not priced in
the region, an EBS volume type, or every item when the region is not in the table) is left out of
the totals and listed in the report (``unpriced``, a ``not priced:`` note each, totals marked as
excluding them) when ``cost_of(..., partial=True)``, as ``cortex cost`` asks; without ``partial``
(``cortex diff``) it is a PlanError naming it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from cortex_iac.errors import PlanError
from cortex_iac.instance_types import MISSING_TYPE_HINT, get_instance_type
from cortex_iac.plan.values import SECRET, UNKNOWN
from cortex_iac.specs.quantity import Quantity

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODE_GROUP_LABEL = "cortex.dev/node-group"
_MANAGED_NODE_GROUPS = ("aws:eks/nodeGroup:NodeGroup", "eks:index:ManagedNodeGroup")
_CONTROL_PLANES = ("eks:index:Cluster", "aws:eks/cluster:Cluster")
_LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
_INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
_INGRESS_CLASS = "kubernetes:networking.k8s.io/v1:IngressClass"
_INGRESS_CLASS_PARAMS = "kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams"
_SERVICE = "kubernetes:core/v1:Service"
_ALB_CONTROLLER = "ingress.k8s.aws/alb"
_GROUP_ANNOTATION = "alb.ingress.kubernetes.io/group.name"
# EKS creates a managed node group's root volume of 20 GiB when neither diskSize nor a launch
# template says otherwise (gp2 for the AL2 and AL2023 AMI types).
_EKS_DEFAULT_DISK = (20, "gp2")
_GP3_FREE_IOPS = 3000
_GP3_FREE_MIBPS = 125
_MIB = 2**20

NOT_INCLUDED = (
    "not included: data transfer, NAT and load balancer data processing (LCUs), public IPv4 addresses, "
    "CloudWatch, KMS and SQS requests, S3 storage and requests, DynamoDB requests and storage, EBS snapshots, "
    "and resources Helm charts create at deploy time"
)


@dataclass(frozen=True)
class CostLine:
    """One priced item: a monthly range in USD and how it was computed."""

    item: str
    count: str
    unit: str
    low: float
    high: float


@dataclass(frozen=True)
class Unpriced:
    """An item of the plan that has no price in the bundled table, left out of the totals."""

    item: str
    count: str
    reason: str


@dataclass(frozen=True)
class CostReport:
    """The monthly cost range of a plan in one region, item by item; ``unpriced`` items are not in
    the totals."""

    region: str
    prices_date: str
    lines: tuple[CostLine, ...]
    notes: tuple[str, ...] = field(default=())
    unpriced: tuple[Unpriced, ...] = field(default=())

    @property
    def low(self) -> float:
        """Sum of the low ends."""
        return round(sum(line.low for line in self.lines), 2)

    @property
    def high(self) -> float:
        """Sum of the high ends."""
        return round(sum(line.high for line in self.lines), 2)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``cortex diff --format json``; ``unpriced`` only when there are such items."""
        doc: dict[str, Any] = {
            "region": self.region,
            "prices_date": self.prices_date,
            "low": self.low,
            "high": self.high,
            "lines": [
                {"item": x.item, "count": x.count, "unit": x.unit, "low": round(x.low, 2), "high": round(x.high, 2)}
                for x in self.lines
            ],
            "notes": list(self.notes),
        }
        if self.unpriced:
            doc["unpriced"] = [{"item": x.item, "count": x.count, "reason": x.reason} for x in self.unpriced]
        return doc


@cache
def price_table() -> dict[str, Any]:
    """The bundled price table (``cortex_iac/data/prices.json``)."""
    table: dict[str, Any] = json.loads((resources.files("cortex_iac") / "data" / "prices.json").read_text())
    return table


def plan_region(plan: dict[str, Any], region: str | None = None) -> str:
    """``region`` if given, else the plan's ``aws:region`` config; PlanError if neither says."""
    if region:
        return region
    value = (plan.get("config") or {}).get("aws:region")
    if isinstance(value, str) and value and value != SECRET:
        return value
    raise PlanError(
        f"plan of stack {plan.get('stack')!r} has no aws:region in its config; pass --region "
        f"(one of {', '.join(price_table()['regions'])})"
    )


def cost_of(plan: dict[str, Any], region: str | None = None, *, partial: bool = False) -> CostReport:
    """The monthly cost range of a plan document (see the module docstring for what is priced).

    An item without a price in the bundled table is a PlanError naming it, or with ``partial`` an
    entry of the report's ``unpriced`` (and a note), outside the totals; a region the table does
    not have then leaves every item unpriced.
    """
    region = plan_region(plan, region)
    table = price_table()
    known_region = region in table["regions"]
    if not known_region and not partial:
        raise PlanError(_region_missing(region))
    prices = _Prices(table, region, partial=partial)
    resources_ = [r for r in plan["resources"] if isinstance(r.get("inputs"), dict)]
    lines: list[CostLine] = []
    notes: list[str] = [
        f"spot prices are ESTIMATES: on-demand x {1 - prices.spot_factor:.0%} off (spot_discount_estimate in the "
        "price table), not quotes; the high end assumes on-demand",
    ]
    lines += _control_planes(resources_, prices)
    lines += _karpenter_groups(resources_, prices, notes)
    lines += _managed_node_groups(resources_, prices)
    lines += _nat_gateways(resources_, prices)
    lines += _load_balancers(resources_, prices, notes)
    notes.append(NOT_INCLUDED)
    if prices.unpriced:
        head = [f"{_region_missing(region)}: nothing is priced"] if not known_region else []
        notes[:0] = head + [f"not priced: {x.item}, count {x.count}: {x.reason}" for x in prices.unpriced]
    dates = sorted({table["source_dates"][s] for s in prices.used}) or [table["date"]]
    prices_date = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    return CostReport(
        region=region, prices_date=prices_date, lines=tuple(lines), notes=tuple(notes), unpriced=tuple(prices.unpriced)
    )


def cost_command(plan_file: Path, region: str | None = None) -> str:
    """Text for ``cortex cost PLAN.json [--region R]``: a table and the total range; items without
    a price are listed, not fatal."""
    from cortex_iac.plan.plan import load_plan

    plan = load_plan(plan_file)
    return render_text(cost_of(plan, region, partial=True)) + "\n" + render_api_costs(stack_cost(plan, region))


def render_api_costs(cost: StackCost) -> str:
    """The per-API model as text: one line per API (min_replicas and max_replicas), fixed, total."""
    header = ("per API", "at min_replicas", "at max_replicas", "how")
    rows = []
    for a in cost.apis:
        how = a.problem or (f"min: {a.at_min.describe()}; max: {a.at_max.describe()}" if a.at_min and a.at_max else "")
        rows.append((f"{a.kind} {a.name}", money(a.low), money(a.high), how))
    rows.append(("fixed cluster costs", money(cost.fixed_low), money(cost.fixed_high), ""))
    rows.append(("total", money(cost.low), money(cost.high), ""))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].rjust(widths[2])]
        return ("  ".join(cells) + (f"  {row[3]}" if row[3] else "")).rstrip()

    out = [f"Monthly cost per API, {cost.region} (pods' requests packed on their node groups; docs/preview.md)", "",
           fmt(header), *(fmt(r) for r in rows)]
    workers = job_worker_rows(cost)
    if workers:
        out += ["", JOB_WORKERS_TITLE + ":", ""]
        wide = [max(len(r[i]) for r in workers) for i in range(2)]
        out += [f"{r[0].ljust(wide[0])}  {r[1].ljust(wide[1])}  {r[2]}".rstrip() for r in workers]
    return "\n".join(out) + "\n"


JOB_WORKERS_TITLE = ("Job workers, per use (USD per worker-hour; not in the monthly totals: "
                     "a job's workers run only while it runs)")


def job_worker_rows(cost: StackCost) -> list[tuple[str, str, str]]:
    """(api, per worker-hour, how) for each job API: one worker packed alone on its node groups,
    the spot estimate when its group is spot-first, to on-demand."""
    rows = []
    for a in cost.apis:
        w = a.worker
        if w is None:
            continue
        hourly = "–" if w.alone is None else (per_hour(w.high) if round(w.low, 4) == round(w.high, 4)
                                              else f"{per_hour(w.low)} – {per_hour(w.high)}")
        rows.append((f"{a.kind} {a.name}", hourly, w.describe()))
    return rows


def money(value: float) -> str:
    """``$1,234.56``; negative values as ``-$12.00``."""
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def per_hour(value: float) -> str:
    """An hourly price, ``$0.0960/h``."""
    return f"${value:.4f}/h"


def money_range(low: float, high: float, *, signed: bool = False) -> str:
    """``$10.00`` when both ends agree, else ``$10.00 – $20.00``; ``signed`` puts ``+`` on gains."""

    def one(v: float) -> str:
        return f"+{money(v)}" if signed and v > 0 else money(v)

    return one(low) if round(low, 2) == round(high, 2) else f"{one(low)} – {one(high)}"


def render_text(report: CostReport) -> str:
    """The report as an aligned text table, total last, then the notes."""
    header = ("item", "count", "unit price", "low/month", "high/month")
    rows = [(x.item, x.count, x.unit, money(x.low), money(x.high)) for x in report.lines]
    excluding = f", excluding {_items(len(report.unpriced))} without a price (see the notes)" if report.unpriced else ""
    rows.append(("total" + (" of priced items" if report.unpriced else ""), "", "", money(report.low), money(report.high)))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[i].ljust(widths[i]) if i < 3 else row[i].rjust(widths[i]) for i in range(5)]
        return "  ".join(cells).rstrip()

    out = [
        f"Monthly cost estimate, {report.region} (public on-demand prices of {report.prices_date}, USD, "
        f"{price_table()['hours_per_month']} h/month)",
        "",
        fmt(header),
        *(fmt(r) for r in rows[:-1]),
        fmt(tuple("-" * w for w in widths)),
        fmt(rows[-1]),
        "",
        f"total: {money_range(report.low, report.high)} per month{excluding}",
        *(f"note: {n}" for n in report.notes),
    ]
    return "\n".join(out) + "\n"


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _region_missing(region: str) -> str:
    return f"region {region!r} is not in the bundled price table; it has {', '.join(price_table()['regions'])}"


class _NoPrice(Exception):
    """The price table has no price for something; the message says what."""


class _Prices:
    def __init__(self, table: dict[str, Any], region: str, *, partial: bool = False) -> None:
        self.region = region
        self.data: dict[str, Any] | None = table["regions"].get(region)
        self.hours = table["hours_per_month"]
        self.spot_factor = 1 - table["spot_discount_estimate"]
        self.used: set[str] = set()  # sources of the prices used, for the report's date range
        self.partial = partial
        self.unpriced: list[Unpriced] = []

    def skip(self, item: str, count: str, error: _NoPrice) -> None:
        """Leave ``item`` out of the totals, listed as unpriced; a PlanError unless ``partial``."""
        if not self.partial:
            raise PlanError(str(error)) from None
        self.unpriced.append(Unpriced(item.strip(), count, str(error)))

    def _region(self) -> dict[str, Any]:
        if self.data is None:
            raise _NoPrice(f"no prices for region {self.region!r}")
        return self.data

    def hourly(self, key: str, source: str) -> float:
        price = float(self._region()[key])
        self.used.add(source)
        return price

    def instance_hour(self, instance_type: str) -> float:
        data = self._region()
        try:
            price = data["instances"][instance_type]
        except KeyError:
            listed = instance_type in data.get("unpriced", ())
            why = ("none of its sources prices it there (listed as unpriced; scripts/gen_prices.py)" if listed
                   else f"{len(data['instances'])} types are priced there")
            raise _NoPrice(
                f"instance type {instance_type!r} has no price for {self.region} in the bundled price table "
                f"(cortex_iac/data/prices.json): {why}"
            ) from None
        self.used.add(data["instance_sources"][instance_type.split(".")[0]])
        return float(price)

    def month(self, hourly: float) -> float:
        return float(hourly * self.hours)

    def volume_month(self, size_gib: float, volume_type: str, iops: int | None, throughput: int | None) -> float:
        data = self._region()
        ebs = data["ebs"].get(volume_type)
        if ebs is None:
            raise _NoPrice(f"EBS volume type {volume_type!r} has no price for {self.region}; table has {', '.join(data['ebs'])}")
        self.used.add("cortex")
        cost = size_gib * ebs["gb_month"]
        if volume_type == "gp3":
            cost += max(0, (iops or 0) - _GP3_FREE_IOPS) * ebs["iops_month"]
            cost += max(0, (throughput or 0) - _GP3_FREE_MIBPS) * ebs["mibps_month"]
        elif volume_type == "io1":
            cost += (iops or 0) * ebs["iops_month"]
        return float(cost)


def _where(r: dict[str, Any]) -> str:
    return f"{r['type']} {r['name']!r}"


def _known(value: Any, r: dict[str, Any], what: str) -> Any:
    if value == UNKNOWN or value == SECRET:
        raise PlanError(f"{_where(r)}: {what} is only known after apply, so its cost cannot be estimated")
    return value


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return obj if obj in (UNKNOWN, SECRET) else None
        obj = obj.get(key)
    return obj


def _control_planes(rs: list[dict[str, Any]], prices: _Prices) -> list[CostLine]:
    components = {r["urn"] for r in rs if r["type"] == "eks:index:Cluster"}
    # An aws.eks.Cluster inside a pulumi_eks Cluster is the same control plane.
    planes = [r for r in rs if r["type"] in _CONTROL_PLANES and r.get("parent") not in components]
    lines = []
    for r in sorted(planes, key=lambda r: r["name"]):
        item = f"EKS control plane {r['name']}"
        try:
            hourly = prices.hourly("eks_cluster_hour", "eks")
        except _NoPrice as e:
            prices.skip(item, "1", e)
            continue
        lines.append(CostLine(item, "1", per_hour(hourly), prices.month(hourly), prices.month(hourly)))
    return lines


@dataclass
class _Pool:
    resource: dict[str, Any]
    instance_type: str
    spot_first: bool
    floor: int
    max_dynamic: int
    node_class: str | None


def _karpenter_groups(
    rs: list[dict[str, Any]], prices: _Prices, notes: list[str], *, floors_only: bool = False
) -> list[CostLine]:
    # Keyed by name; a class whose metadata is unknown in the plan is under UNKNOWN.
    classes = {_get(r["inputs"], "metadata", "name"): r for r in rs if r["type"] == NODE_CLASS}
    groups: dict[str, list[_Pool]] = {}
    not_sized: dict[str, tuple[str, _NoPrice]] = {}  # groups whose size needs a type the table lacks
    for r in rs:
        if r["type"] == NODE_POOL:
            labels = _get(r["inputs"], "metadata", "labels") or {}
            group = labels.get(NODE_GROUP_LABEL) if isinstance(labels, dict) else None
            group = group if isinstance(group, str) else _known(_get(r["inputs"], "metadata", "name"), r, "metadata.name")
            try:
                groups.setdefault(group, []).append(_node_pool(r))
            except _UnknownType as e:
                not_sized.setdefault(group, (e.instance_type, e))
    lines = []
    for group in sorted({*groups, *not_sized}):
        if group in not_sized:
            instance_type, error = not_sized[group]
            prices.skip(f"node group {group} ({instance_type}) and its root volumes", "unknown", error)
            continue
        pools = groups[group]
        instance_type = pools[0].instance_type
        floor = sum(p.floor for p in pools)
        most = floor if floors_only else floor + sum(p.max_dynamic for p in pools)
        if floors_only and not floor:
            continue
        count = f"{floor}–{most}" if floor != most else str(floor)
        spot_first = any(p.spot_first for p in pools)
        kind = ", spot first" if spot_first else ""
        item = f"node group {group} ({instance_type}{kind})" + (", min_instances" if floors_only else "")
        try:
            on_demand = prices.instance_hour(instance_type)
        except _NoPrice as e:
            prices.skip(item, count, e)
        else:
            spot = on_demand * prices.spot_factor
            low = sum(p.floor * (spot if p.spot_first else on_demand) for p in pools)
            high = most * on_demand
            unit = per_hour(on_demand) + (f" (spot est. {per_hour(spot)})" if spot_first else "")
            lines.append(CostLine(item, count, unit, prices.month(low), prices.month(high)))
        volume = _pool_volume(pools[0], classes, prices, notes)
        if isinstance(volume, _NoPrice):
            prices.skip(f"root volumes of {group}", count, volume)
        elif volume is not None:
            size, per_node = volume
            lines.append(
                CostLine(f"  root volumes of {group} ({size})", count, f"${per_node:.2f}/month", floor * per_node, most * per_node)
            )
    return lines


def _node_pool(r: dict[str, Any]) -> _Pool:
    spec = _known(r["inputs"].get("spec"), r, "spec")
    template = _known(_get(spec, "template", "spec"), r, "spec.template.spec") or {}
    requirements = _known(template.get("requirements"), r, "spec.template.spec.requirements") or []
    by_key = {q.get("key"): q for q in requirements if isinstance(q, dict)}
    types = _known(_get(by_key.get("node.kubernetes.io/instance-type"), "values"), r, "the instance-type requirement")
    if not types or _get(by_key.get("node.kubernetes.io/instance-type"), "operator") != "In":
        raise PlanError(
            f"{_where(r)}: no 'node.kubernetes.io/instance-type In [...]' requirement; only pools pinned to "
            "instance types can be priced"
        )
    capacity = _get(by_key.get("karpenter.sh/capacity-type"), "values") or ["on-demand"]
    capacity = _known(capacity, r, "the capacity-type requirement")
    replicas = spec.get("replicas")
    if replicas is not None:
        floor, max_dynamic = int(_known(replicas, r, "spec.replicas")), 0
    else:
        floor, max_dynamic = 0, _max_nodes(r, spec.get("limits"), types[0])
    node_class = _get(template, "nodeClassRef", "name")
    return _Pool(r, types[0], capacity[0] == "spot", floor, max_dynamic, node_class if isinstance(node_class, str) else None)


class _UnknownType(_NoPrice):
    def __init__(self, message: str, instance_type: str) -> None:
        super().__init__(message)
        self.instance_type = instance_type


def _max_nodes(r: dict[str, Any], limits: Any, instance_type: str) -> int:
    """How many instances of ``instance_type`` the pool's limits allow."""
    limits = _known(limits, r, "spec.limits")
    if not limits:
        raise PlanError(f"{_where(r)}: spec.limits is not set, so the pool's maximum (and cost) is unbounded")
    try:
        t = get_instance_type(instance_type)
    except KeyError:
        raise _UnknownType(
            f"{_where(r)}: instance type {instance_type!r} is not in cortex_iac's instance type table, so the number "
            f"of nodes its limits allow is not known; {MISSING_TYPE_HINT}",
            instance_type,
        ) from None
    capacity = {
        "nodes": Decimal(1),
        "cpu": Decimal(t.vcpus),
        "memory": Decimal(t.memory_mib * _MIB),
        "nvidia.com/gpu": Decimal(t.gpus),
        "aws.amazon.com/neuron": Decimal(t.neuron_devices),
    }
    counts = []
    for key, raw in limits.items():
        try:
            amount = Quantity.parse(_known(raw, r, f"spec.limits.{key}")).value
        except ValueError:
            raise PlanError(f"{_where(r)}: spec.limits.{key}: {raw!r} is not a Kubernetes quantity") from None
        per_node = capacity.get(key)
        if per_node is None:
            continue  # a resource the priced type does not bound (e.g. pods)
        counts.append(math.floor(amount / per_node) if per_node else (0 if amount == 0 else None))
    bounded = [c for c in counts if c is not None]
    if not bounded:
        raise PlanError(f"{_where(r)}: spec.limits bound none of nodes, cpu, memory or accelerators of {instance_type}")
    return min(bounded)


def _pool_volume(
    pool: _Pool, classes: dict[str, dict[str, Any]], prices: _Prices, notes: list[str]
) -> tuple[str, float] | _NoPrice | None:
    node_class = classes.get(pool.node_class) if pool.node_class else None
    if node_class is None:
        why = "is only known after apply" if UNKNOWN in classes else "is not in the plan"
        notes.append(
            f"root volumes of NodePool {pool.resource['name']!r} are not priced: its EC2NodeClass "
            f"{pool.node_class!r} {why}"
        )
        return None
    mappings = _get(node_class["inputs"], "spec", "blockDeviceMappings")
    if mappings in (UNKNOWN, SECRET):
        notes.append(f"root volumes of {_where(node_class)} are not priced: its blockDeviceMappings are only known after apply")
        return None
    if not mappings:
        notes.append(f"root volumes of {_where(node_class)} are Karpenter's default and not priced")
        return None
    root = next((m for m in mappings if isinstance(m, dict) and m.get("rootVolume")), mappings[0])
    ebs = _known(root.get("ebs"), node_class, "blockDeviceMappings[].ebs") or {}
    size = Quantity.parse(_known(ebs.get("volumeSize", "20Gi"), node_class, "ebs.volumeSize"))
    gib = float(size.value) / 2**30
    volume_type = _known(ebs.get("volumeType", "gp3"), node_class, "ebs.volumeType")
    try:
        per_node = prices.volume_month(gib, volume_type, ebs.get("iops"), ebs.get("throughput"))
    except _NoPrice as e:
        return e
    return f"{size} {volume_type}", per_node


def _managed_node_groups(rs: list[dict[str, Any]], prices: _Prices) -> list[CostLine]:
    templates = {r["urn"]: r for r in rs if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate"}
    lines = []
    for r in sorted((r for r in rs if r["type"] in _MANAGED_NODE_GROUPS), key=lambda r: r["name"]):
        inputs = r["inputs"]
        scaling = _known(inputs.get("scalingConfig"), r, "scalingConfig") or {}
        low_n = int(_known(scaling.get("minSize", 0), r, "scalingConfig.minSize"))
        high_n = int(_known(scaling.get("maxSize", low_n), r, "scalingConfig.maxSize"))
        template = next((templates[u] for u in r.get("property_dependencies", {}).get("launchTemplate", []) if u in templates), None)
        types = inputs.get("instanceTypes")
        if not types and template is not None:
            types = [template["inputs"].get("instanceType")]
        types = _known(types, r, "instanceTypes")
        if not types or not isinstance(types[0], str):
            raise PlanError(f"{_where(r)}: instanceTypes is not set, so the node group cannot be priced")
        spot = inputs.get("capacityType") == "SPOT"
        count = f"{low_n}–{high_n}" if low_n != high_n else str(low_n)
        item = f"managed node group {r['name']} ({types[0]}{', spot' if spot else ''})"
        try:
            on_demand = prices.instance_hour(types[0])
        except _NoPrice as e:
            prices.skip(item, count, e)
        else:
            low_hour = on_demand * prices.spot_factor if spot else on_demand
            unit = per_hour(on_demand) + (f" (spot est. {per_hour(low_hour)})" if spot else "")
            lines.append(CostLine(item, count, unit, prices.month(low_n * low_hour), prices.month(high_n * on_demand)))
        size, volume_type, iops, throughput = _managed_disk(r, template)
        item = f"  root volumes of {r['name']} ({size:g}Gi {volume_type})"
        try:
            per_node = prices.volume_month(size, volume_type, iops, throughput)
        except _NoPrice as e:
            prices.skip(item, count, e)
            continue
        lines.append(CostLine(item, count, f"${per_node:.2f}/month", low_n * per_node, high_n * per_node))
    return lines


def _managed_disk(r: dict[str, Any], template: dict[str, Any] | None) -> tuple[float, str, int | None, int | None]:
    if template is not None:
        for mapping in _known(template["inputs"].get("blockDeviceMappings"), template, "blockDeviceMappings") or []:
            ebs = mapping.get("ebs") if isinstance(mapping, dict) else None
            if isinstance(ebs, dict) and ebs.get("volumeSize") is not None:
                return (
                    float(_known(ebs["volumeSize"], template, "ebs.volumeSize")),
                    _known(ebs.get("volumeType", "gp3"), template, "ebs.volumeType"),
                    ebs.get("iops"),
                    ebs.get("throughput"),
                )
    disk = r["inputs"].get("diskSize")
    if disk is None:
        return float(_EKS_DEFAULT_DISK[0]), _EKS_DEFAULT_DISK[1], None, None
    return float(_known(disk, r, "diskSize")), _EKS_DEFAULT_DISK[1], None, None


def _nat_gateways(rs: list[dict[str, Any]], prices: _Prices) -> list[CostLine]:
    n = sum(1 for r in rs if r["type"] == "aws:ec2/natGateway:NatGateway")
    if not n:
        return []
    try:
        hourly = prices.hourly("nat_gateway_hour", "cortex")
    except _NoPrice as e:
        prices.skip("NAT gateways", str(n), e)
        return []
    return [CostLine("NAT gateways", str(n), per_hour(hourly), prices.month(n * hourly), prices.month(n * hourly))]


def _load_balancers(rs: list[dict[str, Any]], prices: _Prices, notes: list[str]) -> list[CostLine]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in rs:
        by_type.setdefault(r["type"], []).append(r)
    params_group = {
        _get(r["inputs"], "metadata", "name"): _get(r["inputs"], "spec", "group", "name")
        for r in by_type.get(_INGRESS_CLASS_PARAMS, [])
    }
    class_group: dict[str, str | None] = {}
    for r in by_type.get(_INGRESS_CLASS, []):
        spec = _get(r["inputs"], "spec") or {}
        if isinstance(spec, dict) and spec.get("controller") == _ALB_CONTROLLER:
            params = _get(spec, "parameters", "name")
            class_group[_get(r["inputs"], "metadata", "name")] = params_group.get(params) if isinstance(params, str) else None
    albs: set[str] = set()
    for r in by_type.get(_INGRESS, []):
        inputs = r["inputs"]
        annotations = _get(inputs, "metadata", "annotations") or {}
        annotations = annotations if isinstance(annotations, dict) else {}
        cls = _get(inputs, "spec", "ingressClassName") or annotations.get("kubernetes.io/ingress.class")
        if cls != "alb" and cls not in class_group:
            continue
        group = annotations.get(_GROUP_ANNOTATION) or class_group.get(cls)
        if isinstance(group, str) and group not in (UNKNOWN, SECRET):
            albs.add(f"group {group}")
        else:
            albs.add(f"ingress {r['urn']}")
    albs.update(f"aws {r['urn']}" for t in _LOAD_BALANCERS for r in by_type.get(t, []))
    services = [r for r in by_type.get(_SERVICE, []) if _get(r["inputs"], "spec", "type") == "LoadBalancer"]
    items = []
    if albs:
        groups = sorted(a.split(" ", 1)[1] for a in albs if a.startswith("group "))
        items.append(("load balancers (ALB" + (f"; IngressGroups: {', '.join(groups)})" if groups else ")"), len(albs)))
    if services:
        items.append((f"Service load balancers ({', '.join(sorted(r['name'] for r in services))})", len(services)))
    lines = []
    for label, n in items:
        try:
            hourly = prices.hourly("load_balancer_hour", "load_balancer")
        except _NoPrice as e:
            prices.skip(label, str(n), e)
            continue
        lines.append(CostLine(label, str(n), per_hour(hourly), prices.month(n * hourly), prices.month(n * hourly)))
    if lines:
        notes.append("load balancers: hourly charge only; LCUs (traffic) are extra")
    return lines


# ---- cost per API -------------------------------------------------------------------------------

# Kubernetes' default pods-per-node limit: a pod that requests nothing still takes a slot.
MAX_PODS_PER_NODE = 110


@dataclass(frozen=True)
class Packing:
    """``replicas`` pods packed on ``nodes`` nodes of ``instance_type`` (its node group ``group``)."""

    replicas: int
    instance_type: str | None
    group: str | None
    nodes: int
    hourly: float  # of all the nodes, USD
    group_max: int | None = None  # the group's max_instances, when fewer than ``nodes``

    def describe(self) -> str:
        if not self.replicas:
            return "0 pods"
        over = f" (more than the group's max_instances {self.group_max})" if self.group_max is not None else ""
        return f"{self.replicas} pod{'s' if self.replicas != 1 else ''} on {self.nodes} × {self.instance_type}{over}"


@dataclass(frozen=True)
class JobWorkerCost:
    """What one worker of a job API's jobs costs while it runs (per use: in no monthly total).

    The worker pod is packed like an API's pods: alone (``alone``, one job worker) on the cheapest
    instance type of its node groups that fits it; ``low`` per worker-hour at the spot ESTIMATE
    when that group is spot-first, else on-demand, ``high`` on-demand; ``per_node`` workers of one
    job fit one node of that type. ``problem`` says why it is not priced (then ``alone`` is None)."""

    alone: Packing | None
    low: float = 0.0
    high: float = 0.0
    per_node: int = 0
    spot: bool = False
    problem: str | None = None

    def describe(self) -> str:
        if self.alone is None:
            return self.problem or ""
        share = f"; {self.per_node} workers fit one node" if self.per_node > 1 else ""
        capacity = "spot first" if self.spot else "on-demand"
        return f"1 worker on 1 × {self.alone.instance_type} (group {self.alone.group}, {capacity}){share}"


@dataclass(frozen=True)
class ApiCost:
    """One API's monthly cost: ``low`` at min_replicas (spot estimate on spot groups), ``high`` at
    max_replicas on-demand; ``problem`` says why it is not priced (then both are 0). A job API's
    ``worker`` is what one of its job workers costs per hour, outside ``low`` and ``high``."""

    name: str
    kind: str
    at_min: Packing | None
    at_max: Packing | None
    low: float
    high: float
    problem: str | None = None
    worker: JobWorkerCost | None = None


@dataclass(frozen=True)
class StackCost:
    """The per-API cost model of a plan: fixed cluster costs plus each API's pods on its nodes."""

    region: str
    prices_date: str
    fixed: tuple[CostLine, ...]
    apis: tuple[ApiCost, ...]
    notes: tuple[str, ...]
    unpriced: tuple[Unpriced, ...]

    # Sums are not rounded (a change is the difference of exact sums); money() rounds for display.
    @property
    def fixed_low(self) -> float:
        return sum(x.low for x in self.fixed)

    @property
    def fixed_high(self) -> float:
        return sum(x.high for x in self.fixed)

    @property
    def low(self) -> float:
        """Fixed costs plus every API at min_replicas."""
        return self.fixed_low + sum(a.low for a in self.apis)

    @property
    def high(self) -> float:
        """Fixed costs plus every API at max_replicas."""
        return self.fixed_high + sum(a.high for a in self.apis)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``cortex diff --format json``."""
        def packing(p: Packing | None) -> dict[str, Any] | None:
            return None if p is None else {"replicas": p.replicas, "instance_type": p.instance_type, "node_group": p.group,
                                           "nodes": p.nodes, "hourly": round(p.hourly, 4)}

        return {
            "region": self.region,
            "prices_date": self.prices_date,
            "low": round(self.low, 2),
            "high": round(self.high, 2),
            "fixed": {"low": round(self.fixed_low, 2), "high": round(self.fixed_high, 2),
                      "lines": [{"item": x.item, "count": x.count, "unit": x.unit, "low": round(x.low, 2),
                                 "high": round(x.high, 2)} for x in self.fixed]},
            "apis": [{"name": a.name, "kind": a.kind, "low": round(a.low, 2), "high": round(a.high, 2),
                      "at_min_replicas": packing(a.at_min), "at_max_replicas": packing(a.at_max),
                      **({"problem": a.problem} if a.problem else {}),
                      **({"job_worker": _worker_json(a.worker)} if a.worker else {})} for a in self.apis],
            "notes": list(self.notes),
            "unpriced": [{"item": x.item, "count": x.count, "reason": x.reason} for x in self.unpriced],
        }


def _worker_json(w: JobWorkerCost) -> dict[str, Any]:
    """A job worker's cost for JSON: per worker-hour (USD), low (spot estimate on spot-first groups)
    and high (on-demand), the instance type it is packed on and how many share one node."""
    if w.alone is None:
        return {"per_worker_hour": None, "problem": w.problem}
    return {"per_worker_hour": {"low": round(w.low, 4), "high": round(w.high, 4)}, "instance_type": w.alone.instance_type,
            "node_group": w.alone.group, "spot": w.spot, "workers_per_node": w.per_node,
            **({"problem": w.problem} if w.problem else {})}


def stack_cost(plan: dict[str, Any], region: str | None = None) -> StackCost:
    """Per-API cost of a plan (docs/preview.md, "Cost model"): fixed cluster costs (control plane,
    NAT gateways, load balancers, EKS managed node groups, Karpenter node groups' min_instances,
    with their root volumes) plus, per API, its pods' requests at min_replicas and at max_replicas
    packed onto the cheapest instance type of the node groups it may use. Never fails on a missing
    price: what cannot be priced is listed in ``unpriced`` (or the API's ``problem``) and left out."""
    from cortex_iac.plan.views import api_views, job_workers, node_group_views

    region = plan_region(plan, region)
    table = price_table()
    prices = _Prices(table, region, partial=True)
    rs = [r for r in plan["resources"] if isinstance(r.get("inputs"), dict)]
    notes: list[str] = []
    fixed: list[CostLine] = []
    parts: tuple[Callable[[], list[CostLine]], ...] = (
        lambda: _control_planes(rs, prices),
        lambda: _karpenter_groups(rs, prices, notes, floors_only=True),
        lambda: _managed_node_groups(rs, prices),
        lambda: _nat_gateways(rs, prices),
        lambda: _load_balancers(rs, prices, notes),
    )
    for part in parts:
        try:
            fixed += part()
        except PlanError as e:  # an input only known after apply: list it, price the rest
            prices.unpriced.append(Unpriced("fixed cluster cost", "?", str(e)))
    groups = {n: g for n, g in node_group_views(plan).items() if any(NODE_POOL.split(":")[-1] in u for u in g.urns)}
    workers = job_workers(plan)
    apis = [_api_cost(v, groups, prices, workers.get(urn)) for urn, v in api_views(plan).items()]
    if region not in table["regions"]:
        notes.insert(0, f"{_region_missing(region)}: nothing is priced")
    notes += [
        f"spot prices are ESTIMATES: on-demand x {1 - prices.spot_factor:.0%} off (spot_discount_estimate in the "
        "price table); an API's high end (max_replicas) is priced on-demand",
        "each API's pods are packed on nodes of their own (whole instances, no kubelet reserve; pods that would fit on "
        "the node groups' min_instances nodes are counted twice, so this is an upper estimate)",
        NOT_INCLUDED,
    ]
    notes += [f"not priced: {x.item}, count {x.count}: {x.reason}" for x in prices.unpriced]
    dates = sorted({table["source_dates"][s] for s in prices.used}) or [table["date"]]
    prices_date = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    return StackCost(region, prices_date, tuple(fixed), tuple(sorted(apis, key=lambda a: (a.name, a.kind))),
                     tuple(notes), tuple(prices.unpriced))


def _api_cost(view: Any, groups: dict[str, Any], prices: _Prices, worker: Any = None) -> ApiCost:
    cost = _always_on_cost(view, groups, prices)
    if worker is None:
        return cost
    return ApiCost(cost.name, cost.kind, cost.at_min, cost.at_max, cost.low, cost.high, cost.problem,
                   _worker_cost(worker, groups, prices))


def _worker_cost(worker: Any, groups: dict[str, Any], prices: _Prices) -> JobWorkerCost:
    """One job worker packed alone, as ``_pack`` packs one replica of an API."""
    if worker.requests is None:
        return JobWorkerCost(None, problem=worker.problem)
    if worker.node_groups is None:
        return JobWorkerCost(None, problem="its workers are not placed on a Cortex node group")
    names = worker.node_groups or tuple(groups)
    allowed = [groups[n] for n in names if n in groups]
    if not allowed:
        return JobWorkerCost(None, problem=f"none of its node groups ({', '.join(names) or 'any'}) is a Karpenter node group of the plan")
    low, problem_low = _pack(worker.requests, 1, allowed, prices, spot=True)
    high, problem_high = _pack(worker.requests, 1, allowed, prices, spot=False)
    problem = problem_low or problem_high
    if low is None or high is None:
        return JobWorkerCost(None, problem=problem)
    group = next(g for g in allowed if g.name == low.group)
    return JobWorkerCost(low, low.hourly, high.hourly, pods_per_node(worker.requests, get_instance_type(low.instance_type or "")),
                         bool(group.spot), problem)


def _always_on_cost(view: Any, groups: dict[str, Any], prices: _Prices) -> ApiCost:
    if view.requests is None or view.min_replicas is None or view.max_replicas is None:
        return ApiCost(view.name, view.kind, None, None, 0.0, 0.0, "no pods (or replicas) in the plan to price")
    if view.node_groups is None:
        return ApiCost(view.name, view.kind, None, None, 0.0, 0.0,
                       "its pods are not placed on a Cortex node group (they run on the system nodes, in the fixed costs)")
    names = view.node_groups or tuple(groups)
    allowed = [groups[n] for n in names if n in groups]
    if not allowed:
        return ApiCost(view.name, view.kind, None, None, 0.0, 0.0,
                       f"none of its node groups ({', '.join(names) or 'any'}) is a Karpenter node group of the plan")
    low, problem_low = _pack(view.requests, view.min_replicas, allowed, prices, spot=True)
    high, problem_high = _pack(view.requests, view.max_replicas, allowed, prices, spot=False)
    problem = problem_low or problem_high
    if low is None or high is None:
        return ApiCost(view.name, view.kind, low, high, 0.0, 0.0, problem)
    return ApiCost(view.name, view.kind, low, high, prices.month(low.hourly), prices.month(high.hourly), problem)


def pods_per_node(requests: Any, t: Any) -> int:
    """How many pods with ``requests`` fit on one node of instance type ``t`` (whole instance)."""
    bounds = [MAX_PODS_PER_NODE]
    if requests.cpu > 0:
        bounds.append(int(Decimal(t.vcpus) / requests.cpu))
    if requests.memory > 0:
        bounds.append(int(Decimal(t.memory_mib) * _MIB / requests.memory))
    if requests.gpu:
        bounds.append(t.gpus // requests.gpu)
    if requests.inf:
        bounds.append(t.neuron_devices // requests.inf)
    return max(0, min(bounds))


def _pack(requests: Any, replicas: int, allowed: list[Any], prices: _Prices, *, spot: bool) -> tuple[Packing | None, str | None]:
    """The cheapest packing of ``replicas`` pods onto one instance type of the allowed groups."""
    if replicas <= 0:
        return Packing(0, None, None, 0, 0.0), None
    best: Packing | None = None
    missing: list[str] = []
    for group in allowed:
        for name in group.instance_types:
            try:
                t = get_instance_type(name)
            except KeyError:
                missing.append(f"{name} (not in the instance type table)")
                continue
            per_node = pods_per_node(requests, t)
            if per_node == 0:
                continue
            try:
                hourly = prices.instance_hour(name)
            except _NoPrice:
                missing.append(f"{name} (no price in {prices.region})")
                continue
            if spot and group.spot:
                hourly *= prices.spot_factor
            nodes = math.ceil(replicas / per_node)
            over = group.max_instances if group.max_instances is not None and nodes > group.max_instances else None
            option = Packing(replicas, name, group.name, nodes, nodes * hourly, over)
            if best is None or (round(option.hourly, 6), name) < (round(best.hourly, 6), best.instance_type or ""):
                best = option
    problem = f"not priced: {', '.join(dict.fromkeys(missing))}" if missing else None
    if best is None:
        return None, problem or "its pod fits none of its node groups' instance types"
    return best, problem
