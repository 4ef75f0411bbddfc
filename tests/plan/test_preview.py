"""The reviewer's view: headline, Cortex summary and per-API cost, on plans of the library's own
stack program (tests/plan/fixtures/stacks.py), with goldens in every format."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cortex_iac.plan.cost import price_table, stack_cost
from cortex_iac.plan.diff import MARKDOWN_LIMIT, diff_command, preview_report, render_markdown
from cortex_iac.plan.plan import dumps, load_plan
from cortex_iac.plan.preview import cidrs, grants, widened
from cortex_iac.plan.views import api_views, node_group_views
from cortex_iac.specs.placement import pod_requests
from cortex_iac.specs.stack import specs_from_values
from tests.plan.fixtures.golden import GOLDEN, check_golden
from tests.plan.fixtures.stacks import APIS, SCENARIOS, plan_path, scenario_plan

FORMATS = (("text", "txt"), ("markdown", "md"), ("json", "json"), ("pulumi-json", "pulumi.json"))


def _plan(name: str | None) -> dict[str, Any]:
    return load_plan(plan_path(name))


def _report(name: str) -> Any:
    return preview_report(_plan(None), _plan(name))


@pytest.mark.parametrize("scenario", [None, *SCENARIOS])
def test_stored_stack_plans_are_what_the_program_plans(scenario: str | None) -> None:
    assert dumps(scenario_plan(scenario)) == plan_path(scenario).read_text()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize(("fmt", "ext"), FORMATS)
def test_golden_previews(scenario: str, fmt: str, ext: str) -> None:
    check_golden(GOLDEN / "preview" / f"{scenario}.{ext}", diff_command(plan_path(None), plan_path(scenario), fmt))


HEADLINES = {
    "vpc-cidr": [
        ("cluster", "VPC cortex-demo-vpc is replaced (cidrBlock 192.168.0.0/16 → 10.1.0.0/16): downtime"),
        ("cluster", "EKS cluster cortex-demo-eks is replaced"),
        ("node-group", "node group cortex-demo-prometheus: its nodes are replaced"),
        ("node-group", "node group cortex-demo-system: its nodes are replaced"),
    ],
    "node-type": [("node-group", "node group cpu: its nodes are replaced and their pods rescheduled (instance types m5.large, m5a.large, m6i.large → m5.xlarge)")],
    "node-scale": [],
    "image": [("pods", "API hello: every pod is replaced by a rolling update (image quay.io/cortexlabs-test/realtime-hello-world-cpu:0.42.0 → quay.io/cortexlabs-test/realtime-hello-world-cpu:0.42.1)")],
    "new-api": [],
    "deleted-api": [("api", "API legacy (RealtimeAPI) is deleted (clients of /legacy get 404s)")],
    "endpoint": [("api", "API legacy: endpoint /legacy → /v2/legacy: clients of the old path break")],
    "iam": [("iam", "IAM widened: RolePolicy hello-s3-read of API hello now also allows s3:GetObject on arn:aws:s3:::demo-datasets/*, s3:ListBucket on arn:aws:s3:::demo-datasets")],
    "splitter-weights": [("pods", "API hello-split: every pod is replaced by a rolling update")],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_headline_says_what_must_not_be_missed(scenario: str) -> None:
    lines = [(h.rule, h.text) for h in _report(scenario).headline]
    expected = HEADLINES[scenario]
    # Each expected line starts a headline line, in this order, and no other rule fires.
    assert {r for r, _ in lines} == {r for r, _ in expected}
    found = iter(lines)
    for rule, start in expected:
        assert any(r == rule and t.startswith(start) for r, t in found), (rule, start, lines)


def test_every_headline_links_to_an_anchor_in_the_comment() -> None:
    for scenario in SCENARIOS:
        report = _report(scenario)
        md = render_markdown(report)
        for h in report.headline:
            assert f"](#{h.target})" in md
            assert f'<a id="{h.target}"></a>' in md, (scenario, h.text)


def test_summary_in_cortex_terms() -> None:
    rows = {(r.section, r.name): r for r in _report("node-scale").summary}
    assert list(rows) == [("node group", "cpu")]
    assert rows["node group", "cpu"].cells["max_instances"] == ("5", "8")
    assert rows["node group", "cpu"].changed == ["max_instances"]
    new = {r.name: r for r in _report("new-api").summary}["summarizer"]
    assert new.op == "create"
    assert {c: n for c, (_, n) in new.cells.items() if n} == {
        "image": "api=quay.io/demo/summarizer:1.0", "replicas": "3–6", "compute": "api: cpu 1, memory 2Gi",
        "max_concurrency": "4", "max_queue_length": "16", "endpoint": "/summarizer", "node_groups": "cpu",
    }
    gone = {r.name: r for r in _report("deleted-api").summary}["legacy"]
    assert gone.op == "delete" and gone.cells["compute"] == ("api: cpu 500m, memory 1Gi", None)
    split = {r.name: r for r in _report("splitter-weights").summary}["hello-split"]
    assert split.changed == ["weights"]
    assert split.cells["weights"] == ("hello 90, hello-canary 10", "hello 50, hello-canary 50")


def test_pod_requests_read_from_the_plan_are_placements() -> None:
    # The cost model reads requests back from the rendered pods: they are what the spec layer's
    # pod_requests (containers + the kind's sidecar) says, for every API of the base stack.
    views = {v.name: v for v in api_views(_plan(None)).values()}
    from tests.plan.fixtures.stacks import CLUSTER, STACK_PLANS

    stack = specs_from_values({"cluster": CLUSTER, "apis": APIS, "runtimeImage": None, "aws_region": "us-east-1"},
                              STACK_PLANS, "Pulumi.dev.yaml")
    for spec in stack.apis:
        if spec.kind != "RealtimeAPI":
            continue
        need = pod_requests(spec)  # type: ignore[arg-type]
        got = views[spec.name].requests
        assert got is not None
        assert (got.cpu, got.memory, got.gpu, got.inf) == (need.cpu, need.memory, need.gpu, need.inf)


def test_node_group_views() -> None:
    groups = node_group_views(_plan(None))
    assert (groups["cpu"].instance_types, groups["cpu"].spot, groups["cpu"].min_instances, groups["cpu"].max_instances) == (
        ("m5.large", "m5a.large", "m6i.large"), True, 1, 5)
    assert (groups["gpu"].min_instances, groups["gpu"].max_instances, groups["gpu"].spot) == (0, 2, False)


def test_new_api_with_three_replicas_costs_something() -> None:
    # summarizer: cpu 1 + the sidecar's 100m = 1.1 vCPU, 2Gi + 64Mi per pod. On the cpu group's
    # types (2 vCPU, 8 GiB each) one pod fits per node: 3 nodes at min_replicas, 6 at max. The
    # cheapest of m5.large, m5a.large, m6i.large in us-east-1 is m5a.large at $0.086/h; the group
    # is spot-first, so the low end is the spot estimate 0.086 x (1 - 0.6), the high end on-demand.
    report = _report("new-api")
    assert report.base_stack_cost is not None and report.head_stack_cost is not None
    table = price_table()
    hourly = table["regions"]["us-east-1"]["instances"]["m5a.large"]
    assert hourly == 0.086
    low = 3 * hourly * (1 - table["spot_discount_estimate"]) * 730
    high = 6 * hourly * 730
    api = {a.name: a for a in report.head_stack_cost.apis}["summarizer"]
    assert api.at_min is not None and api.at_max is not None
    assert (api.at_min.instance_type, api.at_min.nodes, api.at_max.nodes) == ("m5a.large", 3, 6)
    assert api.low == pytest.approx(75.336, abs=0.005) == pytest.approx(low, abs=0.005)
    assert api.high == pytest.approx(376.68, abs=0.005) == pytest.approx(high, abs=0.005)
    assert report.head_stack_cost.low - report.base_stack_cost.low == pytest.approx(low, abs=0.005)
    assert report.head_stack_cost.high - report.base_stack_cost.high == pytest.approx(high, abs=0.005)
    assert "+$75.34 – +$376.68" in render_markdown(report)


def test_hand_computed_cost_of_a_small_stack() -> None:
    # Two APIs, two node groups (cpu: spot m5.large/m5a.large/m6i.large, 1..5; gpu: g4dn.xlarge 0..2).
    # hello: 300m / 320Mi per pod (200m + 256Mi, sidecar 100m + 64Mi), 1..4 replicas: 1 and 4 pods
    #   fit on one m5a.large (2 vCPU: 6 pods by cpu): low 0.086 * 0.4 * 730 = 25.112, high 0.086 * 730 = 62.78.
    # legacy: 600m / 1088Mi, 1..2: one m5a.large each end: 25.112 and 62.78.
    # fixed: EKS 0.10 * 730 = 73.00; cpu floor 1 m5.large spot-first 0.096 * 0.4 * 730 = 28.032 (high
    #   on-demand 70.08) + 50Gi gp3 at 0.08 = 4.00; system 2 x t3.large 0.0832 * 730 * 2 = 121.472 +
    #   2 x 20Gi gp2 at 0.10 = 4.00; prometheus t3.medium 0.0416 * 730 = 30.368 + 50Gi gp2 = 5.00;
    #   one ALB 0.0225 * 730 = 16.425. Low: 282.297, high: 324.345.
    apis = [a for a in APIS if a["name"] in ("hello", "legacy")]
    from tests.plan.fixtures.stacks import CLUSTER, stack_plan

    cost = stack_cost(stack_plan(CLUSTER, apis))
    fixed_low = 73.0 + 28.032 + 4.0 + 121.472 + 4.0 + 30.368 + 5.0 + 16.425
    fixed_high = fixed_low - 28.032 + 70.08
    assert cost.fixed_low == pytest.approx(fixed_low, abs=0.01)
    assert cost.fixed_high == pytest.approx(fixed_high, abs=0.01)
    assert cost.low == pytest.approx(fixed_low + 25.112 * 2, abs=0.01)
    assert cost.high == pytest.approx(fixed_high + 62.78 * 2, abs=0.01)
    assert [(a.name, round(a.low, 2), round(a.high, 2)) for a in cost.apis] == [("hello", 25.11, 62.78), ("legacy", 25.11, 62.78)]


def test_unpriced_region_or_type_is_listed_and_the_rest_estimated() -> None:
    plan = _plan("new-api")
    doc = json.loads(json.dumps(plan))
    doc["config"]["aws:region"] = "mars-north-1"
    cost = stack_cost(doc)
    assert cost.low == 0 and any("mars-north-1" in n for n in cost.notes)
    assert all(a.problem for a in cost.apis if a.at_max and a.at_max.replicas)
    # A type without a price: the others of the group still price the API.
    doc = json.loads(json.dumps(plan))
    table = price_table()
    saved = table["regions"]["us-east-1"]["instances"].pop("m5a.large")
    try:
        cost = stack_cost(doc)
    finally:
        table["regions"]["us-east-1"]["instances"]["m5a.large"] = saved
    api = {a.name: a for a in cost.apis}["summarizer"]
    assert api.at_min is not None and api.at_min.instance_type in ("m5.large", "m6i.large")
    assert api.problem is not None and "m5a.large" in api.problem


def test_iam_grants_and_wildcards() -> None:
    old = {"Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::a/*"}]}
    same = {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::a/x/*"]}]}
    wider = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::a/*"}]}
    assert widened(old, same) == []
    assert widened(old, wider) == [("s3:*", "arn:aws:s3:::a/*", "")]
    cond = {"Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::[a]",
                           "Condition": {"StringLike": {"s3:prefix": ["x/*"]}}}]}
    assert widened(cond, cond) == []  # brackets are not patterns in IAM
    assert grants({"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*"}}) == set()


def test_cidrs_are_allow_lists_not_address_space() -> None:
    assert cidrs({"cidrBlock": "10.0.0.0/16", "ingress": [{"cidrBlocks": ["0.0.0.0/0"]}]}) == {"0.0.0.0/0"}
    assert cidrs({"metadata": {"annotations": {"alb.ingress.kubernetes.io/inbound-cidrs": "10.0.0.0/8, 1.2.3.4/32"}}}) == {
        "10.0.0.0/8", "1.2.3.4/32"}


def test_markdown_keeps_headline_summary_and_cost_when_cut() -> None:
    report = _report("vpc-cidr")
    md = render_markdown(report, limit=6000)
    assert len(md) <= 6000
    assert "Do not miss" in md and "#### Monthly cost" in md
    assert MARKDOWN_LIMIT < 65_536


# ---- --format pulumi-json -----------------------------------------------------------------------

PULUMI = json.loads((Path(__file__).parent / "fixtures" / "pulumi" / "preview-digest.json").read_text())


def _in_order(keys: list[str], fields: list[str]) -> bool:
    positions = [fields.index(k) for k in keys]
    return positions == sorted(positions)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_pulumi_json_has_the_shape_of_pulumi_preview_json(scenario: str) -> None:
    text = diff_command(plan_path(None), plan_path(scenario), "pulumi-json")
    doc = json.loads(text)
    assert set(doc) <= set(PULUMI["digest_fields"]) and _in_order(list(doc), PULUMI["digest_fields"])
    assert text.startswith('{\n    "config": {')  # MarshalIndent with four spaces, as Pulumi prints it
    report = _report(scenario)
    assert len(doc["steps"]) == len(report.resources)
    for step, d in zip(doc["steps"], report.resources, strict=True):
        assert set(PULUMI["step_required"]) <= set(step) <= set(PULUMI["step_fields"])
        assert _in_order(list(step), PULUMI["step_fields"])
        assert step["op"] in PULUMI["step_ops"] and (step["op"], step["urn"]) == (d.op, d.urn)
        for key in ("oldState", "newState"):
            if key in step:
                state = step[key]
                assert set(PULUMI["resource_v3_required"]) <= set(state) <= set(PULUMI["resource_v3_fields"])
                assert _in_order(list(state), PULUMI["resource_v3_fields"])
                assert state["urn"] == d.urn
                assert "$unknown" not in json.dumps(state) and "$secret" not in json.dumps(state)
        assert ("oldState" in step) == (d.op != "create") and ("newState" in step) == (d.op != "delete")
        for path, diff in (step["detailedDiff"] or {}).items():
            assert set(diff) == set(PULUMI["property_diff_fields"]) and diff["kind"] in PULUMI["diff_kinds"], path
        replaces = set(step.get("replaceReasons", []))
        assert replaces <= set(step.get("diffReasons", []))
        assert all(k.split(".")[0].split("[")[0] in replaces for k, v in (step["detailedDiff"] or {}).items()
                   if v["kind"].endswith("-replace"))
    assert set(doc["changeSummary"]) <= set(PULUMI["step_ops"])
    assert doc["changeSummary"].get("same") == report.unchanged
    assert sum(doc["changeSummary"].values()) == len(report.resources) + report.unchanged


def test_pulumi_json_marks_unknowns_and_replacements_as_pulumi_does() -> None:
    doc = json.loads(diff_command(plan_path(None), plan_path("vpc-cidr"), "pulumi-json"))
    steps = {s["urn"].rsplit("::", 1)[1]: s for s in doc["steps"]}
    vpc = steps["cortex-demo-vpc"]
    assert (vpc["op"], vpc["diffReasons"], vpc["replaceReasons"]) == ("replace", ["cidrBlock"], ["cidrBlock"])
    assert vpc["detailedDiff"] == {"cidrBlock": {"kind": "update-replace", "inputDiff": True}}
    assert vpc["oldState"]["inputs"]["cidrBlock"] == "192.168.0.0/16" and vpc["newState"]["inputs"]["cidrBlock"] == "10.1.0.0/16"
    subnet = next(s for n, s in steps.items() if n.startswith("cortex-demo-public-"))
    assert subnet["newState"]["inputs"]["vpcId"] == PULUMI["unknown_string_value"]
    assert doc["changeSummary"] == {"update": 1, "replace": 67, "same": 66}
    # What Pulumi's own integration test matches, once the duration (nanoseconds) Pulumi adds is in.
    text = json.dumps({"steps": doc["steps"], "duration": 1, "changeSummary": doc["changeSummary"]}, indent=4)
    assert re.fullmatch(PULUMI["integration_test_regex"], text)


def test_comment_of_a_huge_change_keeps_the_headline_and_the_cost_under_the_limit() -> None:
    import dataclasses

    report = _report("vpc-cidr")
    rows = report.summary or []
    template = _report("new-api").summary[0]
    report.summary = [dataclasses.replace(template, name=f"api-{i:04d}", target=f"cortex-{i:010d}") for i in range(1500)] + rows
    report.headline = report.headline * 200
    md = render_markdown(report)
    assert len(md) <= MARKDOWN_LIMIT
    assert md.count("- ⚠️ [") == 25 and f"… and {len(report.headline) - 25} more" in md
    assert "#### Monthly cost" in md and "more changed APIs and node groups are not listed" in md


def sample_comment() -> str:
    """The part of the sample pull request's comment docs/preview.md shows: up to the resources."""
    from tests.plan.fixtures.stacks import SAMPLE

    md = render_markdown(preview_report(_plan(None), scenario_plan(*SAMPLE)))
    return md[: md.index("#### Resources")].rstrip("\n")


def test_docs_show_the_sample_comment_as_cortex_diff_writes_it() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "preview.md").read_text()
    shown = docs.split("<!-- sample-comment -->\n", 1)[1].split("\n<!-- /sample-comment -->", 1)[0]
    assert shown == sample_comment()


def test_allow_list_opened_is_a_headline() -> None:
    from tests.plan.fixtures.stacks import CLUSTER, stack_plan

    narrow = {**CLUSTER, "api_load_balancer_cidr_white_list": ["10.0.0.0/8"]}
    wide = {**CLUSTER, "api_load_balancer_cidr_white_list": ["10.0.0.0/8", "0.0.0.0/0"]}
    apis = [a for a in APIS if a["name"] == "legacy"]
    base, head = stack_plan(narrow, apis), stack_plan(wide, apis)
    lines = [h for h in preview_report(base, head).headline if h.rule == "network"]
    assert lines and all("0.0.0.0/0" in h.text for h in lines)
    assert any("IngressClassParams" in h.text for h in lines)
    assert not [h for h in preview_report(head, base).headline if h.rule == "network"]  # narrowing is not opening


def _kind_like(plan: dict[str, Any], api: str, component: str, name: str) -> list[dict[str, Any]]:
    """Copies of an API's component and children as another kind's (``cortex:api:<component>``)."""
    old = next(r for r in plan["resources"] if r["type"] == "cortex:api:RealtimeApi" and r["name"] == api)
    text = json.dumps([r for r in plan["resources"] if r is old or r.get("parent") == old["urn"]])
    text = text.replace("cortex:api:RealtimeApi", f"cortex:api:{component}").replace(f'::{api}', f"::{name}").replace(f'"name": "{api}', f'"name": "{name}')
    copies: list[dict[str, Any]] = json.loads(text)
    return copies


def test_kinds_added_later_are_covered_by_type_and_fall_back_in_the_table() -> None:
    base = json.loads(json.dumps(_plan(None)))
    # An AsyncAPI-like component (a Deployment, a ScaledObject and a queue) and a BatchAPI-like one
    # (a job table and nothing that runs until a job comes), as other branches will render them.
    async_api = _kind_like(base, "legacy", "AsyncApi", "summaries")
    parent = async_api[0]["urn"]
    async_api.append({"urn": parent.replace("cortex:api:AsyncApi::", "cortex:api:AsyncApi$aws:sqs/queue:Queue::") + "-queue",
                      "type": "aws:sqs/queue:Queue", "name": "summaries-queue", "parent": parent, "custom": True,
                      "provider": None, "inputs": {"fifoQueue": False}})
    batch = {"urn": "urn:pulumi:dev::cortex::cortex:api:BatchApi::scorer", "type": "cortex:api:BatchApi",
             "name": "scorer", "parent": None, "custom": False, "provider": None, "inputs": {}}
    table = {"urn": "urn:pulumi:dev::cortex::cortex:api:BatchApi$aws:dynamodb/table:Table::scorer-jobs",
             "type": "aws:dynamodb/table:Table", "name": "scorer-jobs", "parent": batch["urn"], "custom": True,
             "provider": None, "inputs": {"hashKey": "job_id"}}
    base["resources"] += [*async_api, batch, table]
    head = _plan(None)
    report = preview_report(base, head)
    texts = [(h.rule, h.text) for h in report.headline]
    assert ("api", "API summaries (AsyncAPI) is deleted (clients of /legacy get 404s)") in texts
    assert ("api", "API scorer (BatchAPI) is deleted") in texts
    assert ("data", "data store deleted: queue summaries-queue is deleted; what it holds is lost") in texts
    assert ("data", "data store deleted: table scorer-jobs is deleted; what it holds is lost") in texts
    rows = {r.name: r for r in report.summary}
    assert rows["summaries"].kind == "AsyncAPI" and rows["summaries"].cells["replicas"] == ("1–2", None)
    assert rows["scorer"].kind == "BatchAPI" and all(v == (None, None) for v in rows["scorer"].cells.values())
    md = render_markdown(report)
    assert "| <a id=" in md and "~~1–2~~" in md
    scorer = {a.name: a for a in stack_cost(base).apis}["scorer"]
    assert (scorer.low, scorer.high, scorer.problem) == (0.0, 0.0, "no pods (or replicas) in the plan to price")


def test_reading_plans_does_not_import_pulumi() -> None:
    import subprocess
    import sys

    code = ("import sys; from cortex_iac.plan.diff import diff_command; from cortex_iac.plan.cost import cost_command; "
            f"diff_command({str(plan_path(None))!r}, {str(plan_path('vpc-cidr'))!r}, 'markdown'); "
            f"cost_command({str(plan_path(None))!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'grpc', 'pulumi_aws')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_cortex_cost_prints_the_cost_per_api() -> None:
    from cortex_iac.plan.cost import cost_command

    text = cost_command(plan_path("new-api"))
    assert re.search(r"^RealtimeAPI summarizer +\$75\.34 +\$376\.68  min: 3 pods on 3 × m5a\.large", text, re.MULTILINE)
    assert re.search(r"^total +\$432\.97 +\$952\.14$", text, re.MULTILINE)


# ---- job workers: per use, outside the monthly totals ---------------------------------------------

def _job_api_plan(template: Any) -> dict[str, Any]:
    """The sample stack plus a TaskAPI-like component whose job template ConfigMap holds ``template``
    (a Job manifest, or the plan's unknown marker)."""
    plan = json.loads(json.dumps(_plan(None)))
    api = {"urn": "urn:pulumi:dev::cortex::cortex:api:TaskApi::trainer", "type": "cortex:api:TaskApi",
           "name": "trainer", "parent": None, "custom": False, "provider": None, "inputs": {}}
    data = template if isinstance(template, str) else json.dumps(template)
    config_map = {"urn": "urn:pulumi:dev::cortex::cortex:api:TaskApi$kubernetes:core/v1:ConfigMap::trainer-job-template",
                  "type": "kubernetes:core/v1:ConfigMap", "name": "trainer-job-template", "parent": api["urn"],
                  "custom": True, "provider": None, "inputs": {"data": {"job.json": data}}}
    plan["resources"] += [api, config_map]
    return plan


def _job(init: list[dict[str, Any]], containers: list[dict[str, Any]], groups: list[str]) -> dict[str, Any]:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "cortex.dev/node-group", "operator": "In", "values": groups}]}]}}}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "spec": {"template": {"spec": {"initContainers": init, "containers": containers, "affinity": affinity}}}}


def _c(name: str, cpu: str, memory: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "resources": {"requests": {"cpu": cpu, "memory": memory}}, **extra}


def test_a_job_worker_is_priced_per_worker_hour_and_left_out_of_the_monthly_totals() -> None:
    # A BatchAPI-shaped worker pod: the user's container as a native sidecar (500m, 1Gi) and the
    # worker (250m, 512Mi): 750m and 1.5Gi in all. The sample's `cpu` group (spot first) allows
    # m5.large, m5a.large and m6i.large (2 vCPUs, 8 GiB each); by hand from cortex_iac/data/prices.json
    # (us-east-1): m5.large $0.096/h, m5a.large $0.086/h, m6i.large $0.096/h, so m5a.large is the
    # cheapest that fits one worker: on-demand $0.0860 per worker-hour, spot estimate
    # 0.086 x (1 - 0.6) = $0.0344; min(2 / 0.75, 8 / 1.5) = 2 workers of a job fit one node.
    job = _job([_c("api", "500m", "1Gi", restartPolicy="Always")], [_c("worker", "250m", "512Mi")], ["cpu"])
    plan = _job_api_plan(job)
    cost = stack_cost(plan)
    trainer = {a.name: a for a in cost.apis}["trainer"]
    worker = trainer.worker
    assert worker is not None and worker.alone is not None and worker.problem is None
    assert abs(worker.low - 0.0344) < 0.01 and abs(worker.high - 0.0860) < 0.01
    assert (worker.alone.instance_type, worker.alone.group, worker.per_node, worker.spot) == ("m5a.large", "cpu", 2, True)
    # Per use: the monthly totals are those of the plan without the job API's template.
    without = _plan(None)
    without["resources"] += [r for r in plan["resources"][-2:-1]]
    assert (cost.low, cost.high) == (stack_cost(without).low, stack_cost(without).high)
    # Shown in every output, clearly per use.
    text = cost_command_text(plan)
    assert ("TaskAPI trainer  $0.0344/h – $0.0860/h  1 worker on 1 × m5a.large (group cpu, spot first); "
            "2 workers fit one node") in text
    assert "Job workers, per use (USD per worker-hour; not in the monthly totals" in text
    report = preview_report(_plan(None), plan)
    md = render_markdown(report)
    assert "**Job workers, per use** (USD per worker-hour; not in the monthly totals" in md
    assert ("| TaskAPI trainer | $0.0344/h – $0.0860/h | 1 worker on 1 × m5a.large (group cpu, spot first); "
            "2 workers fit one node |") in md
    assert md.index("**Job workers") < md.index("how this is estimated")
    assert "TaskAPI trainer  $0.0344/h – $0.0860/h" in diff_text(report)
    api = {a["name"]: a for a in stack_cost(plan).to_json()["apis"]}["trainer"]
    assert api["job_worker"] == {"per_worker_hour": {"low": 0.0344, "high": 0.086}, "instance_type": "m5a.large",
                                 "node_group": "cpu", "spot": True, "workers_per_node": 2}


def test_a_plain_init_container_that_asks_more_sets_the_worker_pod_size() -> None:
    from cortex_iac.plan.views import Requests, pod_requests_of

    # A plain init container (1500m) runs before the rest: the pod needs 1500m, and 1.5Gi of memory
    # for the sidecar and worker running together.
    pod = _job([_c("setup", "1500m", "256Mi"), _c("api", "500m", "1Gi", restartPolicy="Always")],
               [_c("worker", "250m", "512Mi")], ["gpu"])["spec"]["template"]["spec"]
    got = pod_requests_of(pod)
    assert got == Requests(cpu=got.cpu, memory=got.memory) and (got.cpu, got.memory) == (1.5, 1.5 * 2**30)


def test_a_job_template_only_known_after_apply_is_listed_not_guessed() -> None:
    plan = _job_api_plan("$unknown")
    trainer = {a.name: a for a in stack_cost(plan).apis}["trainer"]
    assert trainer.worker is not None and trainer.worker.alone is None
    assert trainer.worker.problem == "its job template is only known after apply (it holds the job table's name)"
    assert "TaskAPI trainer  –  its job template is only known after apply" in cost_command_text(plan)


def cost_command_text(plan: dict[str, Any]) -> str:
    from cortex_iac.plan.cost import render_api_costs

    return render_api_costs(stack_cost(plan))


def diff_text(report: Any) -> str:
    from cortex_iac.plan.diff import render_text

    return render_text(report)
