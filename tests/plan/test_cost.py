from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from cortex_iac.errors import PlanError
from cortex_iac.plan.cost import (
    cost_command,
    cost_of,
    money_range,
    plan_region,
    price_table,
    render_text,
)
from cortex_iac.plan.engine import UNKNOWN
from tests.plan.fixtures.golden import GOLDEN, PLANS, check_golden

REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1")
FAMILIES = (
    "m5 m6i m7i m6g m7g t3 c5 c6i c7i r5 r6i g4dn g5 g6 p4d p5 inf2"
).split()
HOURS = 730


def _plan(name: str = "apps-base.json") -> dict[str, Any]:
    return json.loads((PLANS / name).read_text())


def _price(region: str, instance_type: str) -> float:
    return price_table()["regions"][region]["instances"][instance_type]


def _line(report: Any, prefix: str) -> Any:
    return next(x for x in report.lines if x.item.startswith(prefix))


# ---- the bundled price table --------------------------------------------------------------------


def test_price_table_has_its_sources_date_and_regions() -> None:
    table = price_table()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table["date"])
    assert set(table["sources"]) >= {"karpenter", "vantage", "cortex", "eks", "load_balancer"}
    assert all("commit" in table["sources"][k] for k in ("karpenter", "vantage", "cortex"))
    assert set(table["source_dates"]) == set(table["sources"])
    assert 0 < table["spot_discount_estimate"] < 1
    assert set(REGIONS) <= set(table["regions"])
    for region, data in table["regions"].items():
        assert data["eks_cluster_hour"] > 0 and data["nat_gateway_hour"] > 0 and data["load_balancer_hour"] > 0
        assert data["ebs"]["gp3"]["gb_month"] > 0
        assert all(p > 0 for p in data["instances"].values()), region
        # Every priced family names the source it came from.
        assert {t.split(".")[0] for t in data["instances"]} == set(data["instance_sources"]), region
        assert set(data["instance_sources"].values()) <= set(table["sources"])


def test_every_requested_family_is_priced_in_us_east_1_and_common_ones_everywhere() -> None:
    assert set(FAMILIES) <= set(price_table()["regions"]["us-east-1"]["instance_sources"])
    for region in REGIONS:
        families = set(price_table()["regions"][region]["instance_sources"])
        assert {"m5", "m6i", "m6g", "t3", "c5", "r5", "g4dn", "inf2"} <= families, region


def test_prices_are_ordered_within_a_family() -> None:
    # A larger size never costs less: catches a misparsed row.
    for region, data in price_table()["regions"].items():
        prices = data["instances"]
        for family in {t.split(".")[0] for t in prices}:
            row = [prices.get(f"{family}.{size}") for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge")]
            known = [p for p in row if p is not None]
            assert known == sorted(known), (region, family, row)


# ---- cost of a plan -----------------------------------------------------------------------------


def test_golden_cost_report() -> None:
    check_golden(GOLDEN / "cost-apps-base.txt", cost_command(PLANS / "apps-base.json"))


def test_report_dates_are_those_of_the_prices_used() -> None:
    assert cost_of(_plan()).prices_date == "2022-01-07 to 2026-07-20"  # EBS/NAT from 2022, instances 2026
    assert cost_of(_plan(), "eu-west-1").prices_date == "2022-01-07 to 2026-01-21"  # no us-east-1 data


def test_node_group_range_floor_spot_estimate_and_limits() -> None:
    report = cost_of(_plan())
    on_demand = _price("us-east-1", "m5.large")
    spot = on_demand * (1 - price_table()["spot_discount_estimate"])
    cpu = _line(report, "node group cpu")
    # Floor of 1 at the spot estimate; at most 1 + 2 (the dynamic pool's limits) on-demand.
    assert (cpu.count, cpu.low, cpu.high) == ("1–3", pytest.approx(spot * HOURS), pytest.approx(3 * on_demand * HOURS))
    gpu = _line(report, "node group gpu")
    assert (gpu.count, gpu.low, gpu.high) == ("0–2", 0, pytest.approx(2 * _price("us-east-1", "g4dn.xlarge") * HOURS))
    volumes = _line(report, "  root volumes of cpu")
    assert volumes.high == pytest.approx(3 * 50 * price_table()["regions"]["us-east-1"]["ebs"]["gp3"]["gb_month"])


def test_fixed_items() -> None:
    report = cost_of(_plan())
    region = price_table()["regions"]["us-east-1"]
    assert _line(report, "EKS control plane demo").high == pytest.approx(region["eks_cluster_hour"] * HOURS)
    assert _line(report, "NAT gateways").count == "1"
    lb = _line(report, "load balancers")
    # One API's Ingress in the "demo-apis" IngressGroup: one ALB.
    assert (lb.item, lb.count) == ("load balancers (ALB; IngressGroups: demo-apis)", "1")
    system = _line(report, "managed node group system")
    assert (system.count, system.low) == ("2–3", pytest.approx(2 * _price("us-east-1", "t3.large") * HOURS))
    assert report.low == pytest.approx(sum(x.low for x in report.lines), abs=0.01)


@pytest.mark.parametrize(("limits", "count"), [
    ({"nodes": "10", "cpu": "9", "memory": "1Ti"}, "1–5"),  # 9 vCPU hold four m5.large (2 vCPU each)
    ({"nodes": "10", "cpu": "100", "memory": "20Gi"}, "1–3"),  # 20 GiB hold two (8 GiB each)
    ({"nodes": "1", "cpu": "100"}, "1–2"),
    ({"cpu": "4000m", "pods": "110"}, "1–3"),  # pods do not bound an instance type
])
def test_smallest_limit_bounds_the_pool(limits: dict[str, str], count: str) -> None:
    plan = _plan()
    pool = next(r for r in plan["resources"] if r["name"] == "cpu-node-pool")
    pool["inputs"]["spec"]["limits"] = limits
    assert _line(cost_of(plan), "node group cpu").count == count


def test_second_ingress_group_is_a_second_alb() -> None:
    plan = _plan("apps-head.json")
    world = next(r for r in plan["resources"] if r["name"] == "world-ingress")
    assert _line(cost_of(plan), "load balancers").count == "1"
    world["inputs"]["metadata"]["annotations"] = {}
    assert _line(cost_of(plan), "load balancers").count == "2"


def test_region_from_option_then_config() -> None:
    plan = _plan()
    assert plan_region(plan) == "us-east-1"
    assert cost_of(plan, "eu-west-1").region == "eu-west-1"
    assert cost_of(plan, "eu-west-1").high != cost_of(plan).high
    del plan["config"]["aws:region"]
    with pytest.raises(PlanError, match=r"plan of stack 'dev' has no aws:region in its config; pass --region \(one of us-east-1"):
        cost_of(plan)


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: None, None),
    (lambda p: p["config"].update({"aws:region": "mars-north-1"}),
     "region 'mars-north-1' is not in the bundled price table; it has us-east-1"),
])
def test_unknown_region(change: Any, message: str | None) -> None:
    plan = _plan()
    change(plan)
    if message is None:
        cost_of(plan)
    else:
        with pytest.raises(PlanError, match=re.escape(message)):
            cost_of(plan)


def _with_pool_type(instance_type: str) -> dict[str, Any]:
    plan = _plan()
    for r in plan["resources"]:
        if r["type"] == "kubernetes:karpenter.sh/v1:NodePool" and r["name"].startswith("cpu"):
            r["inputs"]["spec"]["template"]["spec"]["requirements"][0]["values"] = [instance_type]
    return plan


def test_missing_price_names_type_and_region_and_makes_nothing_up() -> None:
    # No source for m7i outside us-east-1 was found, so eu-west-1 has none.
    with pytest.raises(PlanError, match=r"instance type 'm7i.large' has no price for eu-west-1 in the bundled price table"):
        cost_of(_with_pool_type("m7i.large"), "eu-west-1")
    assert _line(cost_of(_with_pool_type("m7i.large")), "node group cpu").high > 0


@pytest.mark.parametrize(("edit", "message"), [
    (lambda pool: pool["inputs"].update(spec=UNKNOWN), r"NodePool 'cpu-node-pool': spec is only known after apply"),
    (lambda pool: pool["inputs"]["spec"].pop("limits"), r"spec.limits is not set, so the pool's maximum \(and cost\) is unbounded"),
    (lambda pool: pool["inputs"]["spec"]["template"]["spec"]["requirements"].pop(0),
     r"no 'node.kubernetes.io/instance-type In \[...\]' requirement"),
    (lambda pool: pool["inputs"]["spec"]["limits"].update(cpu="lots"), r"spec.limits.cpu: 'lots' is not a Kubernetes quantity"),
])
def test_pools_that_cannot_be_priced(edit: Any, message: str) -> None:
    plan = copy.deepcopy(_plan())
    edit(next(r for r in plan["resources"] if r["name"] == "cpu-node-pool"))
    with pytest.raises(PlanError, match=message):
        cost_of(plan)


def test_unknown_node_class_is_a_note_not_a_guess() -> None:
    plan = _plan()
    node_class = next(r for r in plan["resources"] if r["name"] == "cpu-node-class")
    node_class["inputs"].update(metadata=UNKNOWN, spec=UNKNOWN)
    report = cost_of(plan)
    assert not any(x.item.startswith("  root volumes of cpu") for x in report.lines)
    assert "root volumes of NodePool 'cpu-floor-node-pool' are not priced: its EC2NodeClass 'demo-cpu' is only known after apply" in report.notes


def test_bad_plan_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text('{"schema_version": 1}')
    with pytest.raises(PlanError, match="missing field 'project'") as e:
        cost_command(bad)
    assert "\n" not in str(e.value)


# ---- items without a price: listed, left out of the totals (cortex cost), or refused (cost_of) ---


def _without(report: Any, *prefixes: str) -> list[Any]:
    return [x for x in report.lines if not x.item.startswith(prefixes)]


def test_unpriced_type_is_listed_and_the_priced_items_still_add_up() -> None:
    # p5e.48xlarge is in the instance-type table but no source prices it in us-east-1; the table says so.
    assert "p5e" not in price_table()["regions"]["us-east-1"]["instance_sources"]
    assert "p5e.48xlarge" in price_table()["regions"]["us-east-1"]["unpriced"]
    base = cost_of(_plan())
    report = cost_of(_with_pool_type("p5e.48xlarge"), partial=True)
    (unpriced,) = report.unpriced
    assert unpriced.item == "node group cpu (p5e.48xlarge, spot first)"
    assert unpriced.reason.startswith("instance type 'p5e.48xlarge' has no price for us-east-1 in the bundled price table")
    assert not any(x.item.startswith("node group cpu") for x in report.lines)
    # The priced node group next to it, and everything else, is as before.
    assert _line(report, "node group gpu") == _line(base, "node group gpu")
    assert _without(report, "  root volumes of cpu") == _without(base, "  root volumes of cpu", "node group cpu")
    assert _line(report, "  root volumes of cpu").high > 0  # its volumes have a price
    assert report.high == pytest.approx(sum(x.high for x in report.lines), abs=0.01)
    assert report.low == pytest.approx(sum(x.low for x in report.lines), abs=0.01)
    assert report.high < base.high
    assert report.notes[0] == f"not priced: {unpriced.item}, count {unpriced.count}: {unpriced.reason}"
    assert report.to_json()["unpriced"] == [{"item": unpriced.item, "count": unpriced.count, "reason": unpriced.reason}]
    assert "unpriced" not in base.to_json()  # the diff's JSON of a fully priced plan is unchanged


def test_cost_command_prints_unpriced_items_and_totals_that_exclude_them(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_with_pool_type("p5e.48xlarge")))
    text = cost_command(plan)
    report = cost_of(_with_pool_type("p5e.48xlarge"), partial=True)
    assert f"total: {money_range(report.low, report.high)} per month, excluding 1 item without a price (see the notes)\n" in text
    assert re.search(r"^total of priced items +\$", text, re.MULTILINE)
    assert "note: not priced: node group cpu (p5e.48xlarge, spot first), count 1" in text
    assert "node group gpu (g4dn.xlarge)" in text


def test_without_partial_an_unpriced_type_is_still_a_plan_error() -> None:
    # What `cortex diff` gets: it says why the cost is missing rather than show a partial total.
    with pytest.raises(PlanError, match=r"instance type 'p5e.48xlarge' has no price for us-east-1 in the bundled price table"):
        cost_of(_with_pool_type("p5e.48xlarge"))


def test_type_missing_from_the_instance_table_is_unpriced_with_how_to_add_it() -> None:
    report = cost_of(_with_pool_type("x9.huge"), partial=True)
    (unpriced,) = report.unpriced
    assert (unpriced.item, unpriced.count) == ("node group cpu (x9.huge) and its root volumes", "unknown")
    assert "instance type 'x9.huge' is not in cortex_iac's instance type table" in unpriced.reason
    assert "regenerate cortex_iac/data/instance_types.json with scripts/gen_instance_types.py" in unpriced.reason
    assert not any(x.item.startswith(("node group cpu", "  root volumes of cpu")) for x in report.lines)
    assert _line(report, "node group gpu").high > 0
    with pytest.raises(PlanError, match=r"NodePool 'cpu-node-pool': instance type 'x9.huge' is not in cortex_iac's instance type table"):
        cost_of(_with_pool_type("x9.huge"))


def test_unpriced_managed_node_group_and_volume_type() -> None:
    plan = _plan()
    system = next(r for r in plan["resources"] if r["type"] == "aws:eks/nodeGroup:NodeGroup")
    system["inputs"]["instanceTypes"] = ["hpc7a.12xlarge"]
    node_class = next(r for r in plan["resources"] if r["name"] == "gpu-node-class")
    node_class["inputs"]["spec"]["blockDeviceMappings"][0]["ebs"]["volumeType"] = "io2"
    report = cost_of(plan, partial=True)
    assert [(x.item, x.count) for x in report.unpriced] == [
        ("root volumes of gpu", "0–2"),
        ("managed node group system (hpc7a.12xlarge)", "2–3"),
    ]
    assert report.unpriced[0].reason == "EBS volume type 'io2' has no price for us-east-1; table has gp2, gp3, io1, sc1, st1"
    assert _line(report, "  root volumes of system (40Gi gp2)").low > 0
    assert _line(report, "node group gpu").high > 0


def test_region_missing_from_the_price_table_prices_nothing_and_says_so() -> None:
    report = cost_of(_plan(), "mars-north-1", partial=True)
    assert report.lines == () and (report.low, report.high) == (0, 0)
    assert report.notes[0] == (
        "region 'mars-north-1' is not in the bundled price table; it has us-east-1, us-east-2, us-west-2, eu-west-1, "
        "eu-central-1, ap-southeast-1: nothing is priced"
    )
    # Every item of the plan is listed, with its count.
    assert [(x.item, x.count) for x in report.unpriced] == [
        ("EKS control plane demo", "1"),
        ("node group cpu (m5.large, spot first)", "1–3"),
        ("root volumes of cpu", "1–3"),
        ("node group gpu (g4dn.xlarge)", "0–2"),
        ("root volumes of gpu", "0–2"),
        ("managed node group system (t3.large)", "2–3"),
        ("root volumes of system (40Gi gp2)", "2–3"),
        ("NAT gateways", "1"),
        ("load balancers (ALB; IngressGroups: demo-apis)", "1"),
    ]
    assert {x.reason for x in report.unpriced} == {"no prices for region 'mars-north-1'"}
    assert "excluding 9 items without a price" in render_text(report)
