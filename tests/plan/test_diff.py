from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from cortex_iac.errors import PlanError
from cortex_iac.plan import diff as diff_module
from cortex_iac.plan.diff import (
    MARKDOWN_LIMIT,
    MISSING,
    diff_command,
    diff_plans,
    line_diff,
    property_path,
    render_json,
    render_markdown,
    render_text,
    replace_inputs,
    show,
)
from cortex_iac.plan.engine import SECRET, UNKNOWN, run_program
from cortex_iac.plan.plan import dumps, to_plan
from tests.plan.fixtures.golden import GOLDEN, PLANS, check_golden
from tests.plan.fixtures.programs import PAIRS, plan_of

REPO = Path(__file__).resolve().parents[2]


# ---- golden outputs on the fixture plans --------------------------------------------------------


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_fixture_plans_are_what_the_programs_plan(pair: str) -> None:
    base, head = PAIRS[pair]
    check_golden(PLANS / f"{pair}-base.json", dumps(plan_of(base)))
    check_golden(PLANS / f"{pair}-head.json", dumps(plan_of(head)))


@pytest.mark.parametrize(("pair", "fmt", "ext"), [
    ("apps", "markdown", "md"), ("apps", "text", "txt"), ("apps", "json", "json"),
    ("vpc", "markdown", "md"), ("vpc", "text", "txt"),
])
def test_golden_diffs(pair: str, fmt: str, ext: str) -> None:
    out = diff_command(PLANS / f"{pair}-base.json", PLANS / f"{pair}-head.json", fmt)
    check_golden(GOLDEN / f"diff-{pair}.{ext}", out)


def _load(name: str) -> dict[str, Any]:
    return json.loads((PLANS / name).read_text())


def _ops(base: dict[str, Any], head: dict[str, Any]) -> dict[str, str]:
    return {d.name: d.op for d in diff_plans(base, head).resources}


def test_apps_pair_ops() -> None:
    assert _ops(_load("apps-base.json"), _load("apps-head.json")) == {
        "hello-deployment": "update",
        "legacy": "replace",
        "greeting": "replace",
        "cpu-node-pool": "update",
        "gpu-node-class": "delete",
        "gpu-node-pool": "delete",
        "world-deployment": "create",
        "world-service": "create",
        "world-ingress": "create",
    }


def test_vpc_replacement_spreads_through_dependencies_and_the_provider() -> None:
    base, head = _load("vpc-base.json"), _load("vpc-head.json")
    report = diff_plans(base, head)
    ops = {d.name: d for d in report.resources}
    assert {d.op for d in report.resources} == {"replace"}
    assert report.unchanged == 1  # the EIP: nothing of it comes from the VPC
    assert ops["subnet-a"].reasons == ("cidrBlock, vpcId cannot change in place",)
    assert ops["nat"].changes[0].note == "comes from replaced aws:ec2/subnet:Subnet subnet-a"
    assert ops["k8s"].reasons == ("kubeconfig cannot change in place",)
    assert ops["hello-deployment"].reasons == ("its provider pulumi:providers:kubernetes k8s is replaced",)


def test_markdown_goldens_fit_one_comment() -> None:
    for path in GOLDEN.glob("diff-*.md"):
        assert len(path.read_text()) <= MARKDOWN_LIMIT


def test_json_is_deterministic_and_complete() -> None:
    a = diff_command(PLANS / "apps-base.json", PLANS / "apps-head.json", "json")
    assert a == diff_command(PLANS / "apps-base.json", PLANS / "apps-head.json", "json")
    doc = json.loads(a)
    assert doc["summary"] == {"create": 3, "update": 2, "replace": 2, "delete": 2, "unchanged": 12}
    image = next(r for r in doc["resources"] if r["name"] == "hello-deployment")["changes"][0]
    assert image["path"] == "spec.template.spec.containers[0].image"
    assert image["new"].endswith(":0.42.1")
    # The GPU group and its volumes go away; the CPU pool may hold 3 more m5.large nodes.
    assert doc["cost"]["delta"]["low"] == 0
    assert doc["cost"]["delta"]["high"] < 0


# ---- rules, one at a time -----------------------------------------------------------------------


def _plan(*resources: dict[str, Any], config: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "schema_version": 2, "project": "p", "stack": "s", "config": config or {},
        "resources": list(resources), "outputs": {},
    }


def _res(type_: str, name: str, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:s::p::{type_}::{name}", "type": type_, "name": name, "parent": None,
        "custom": True, "provider": extra.pop("provider", None), "inputs": inputs,
        "dependencies": [], "property_dependencies": extra.pop("property_dependencies", {}),
        "ignore_changes": extra.pop("ignore_changes", []), "replace_on_changes": extra.pop("replace_on_changes", []),
        "delete_before_replace": extra.pop("delete_before_replace", False), "aliases": extra.pop("aliases", []),
        **extra,
    }


def _one(old: dict[str, Any], new: dict[str, Any]) -> Any:
    report = diff_plans(_plan(old), _plan(new))
    return report.resources[0] if report.resources else None


def _k8s(type_: str, obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return _res(f"kubernetes:{type_}", "x", obj, **extra)


def _edit(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target = obj
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value
    return obj


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "a", "namespace": "default"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
             "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}},
}


@pytest.mark.parametrize(("type_", "obj", "path", "value", "op"), [
    ("apps/v1:Deployment", DEPLOYMENT, "spec.replicas", 3, "update"),
    ("apps/v1:Deployment", DEPLOYMENT, "spec.selector.matchLabels", {"app": "b"}, "replace"),
    ("apps/v1:Deployment", DEPLOYMENT, "metadata.name", "b", "replace"),
    ("apps/v1:Deployment", DEPLOYMENT, "metadata.namespace", "other", "replace"),
    ("apps/v1:Deployment", DEPLOYMENT, "metadata.labels", {"team": "ml"}, "update"),
    ("apps/v1:StatefulSet", DEPLOYMENT, "spec.serviceName", "db", "replace"),
    ("batch/v1:Job", {"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}, "spec.template.spec.restartPolicy", "OnFailure", "replace"),
    ("batch/v1:Job", {"spec": {"backoffLimit": 1}}, "spec.backoffLimit", 2, "update"),
    ("core/v1:Service", {"spec": {"clusterIP": "None", "ports": []}}, "spec.clusterIP", "10.0.0.1", "replace"),
    ("core/v1:Service", {"spec": {"clusterIP": "None", "ports": []}}, "spec.ports", [{"port": 80}], "update"),
    ("core/v1:ConfigMap", {"data": {"a": "1"}}, "data.a", "2", "replace"),
    ("core/v1:Secret", {"type": "Opaque", "stringData": SECRET}, "type", "kubernetes.io/tls", "replace"),
    ("policy/v1:PodDisruptionBudget", {"spec": {"maxUnavailable": 1}}, "spec.maxUnavailable", 2, "update"),
    ("policy/v1beta1:PodDisruptionBudget", {"spec": {"maxUnavailable": 1}}, "spec.maxUnavailable", 2, "replace"),
    ("karpenter.sh/v1:NodePool", {"metadata": {"name": "p"}, "spec": {"limits": {"nodes": "2"}}}, "spec.limits.nodes", "5", "update"),
])
def test_kubernetes_replacement_rules(type_: str, obj: dict[str, Any], path: str, value: Any, op: str) -> None:
    assert _one(_k8s(type_, obj), _k8s(type_, _edit(obj, path, value))).op == op


def test_naming_an_autonamed_object_replaces_it_but_labelling_it_does_not() -> None:
    obj = {"spec": {"replicas": 1}}
    named = _one(_k8s("apps/v1:Deployment", obj), _k8s("apps/v1:Deployment", {**obj, "metadata": {"name": "a"}}))
    labelled = _one(_k8s("apps/v1:Deployment", obj), _k8s("apps/v1:Deployment", {**obj, "metadata": {"labels": {"a": "b"}}}))
    assert (named.op, labelled.op) == ("replace", "update")


def test_mutable_config_maps_update_in_place_unless_immutable() -> None:
    provider = _res("pulumi:providers:kubernetes", "k8s", {"enableConfigMapMutable": "true"})
    old = _k8s("core/v1:ConfigMap", {"data": {"a": "1"}}, provider=provider["urn"])
    new = _k8s("core/v1:ConfigMap", {"data": {"a": "2"}}, provider=provider["urn"])
    assert diff_plans(_plan(provider, old), _plan(provider, new)).resources[0].op == "update"
    frozen_old = _edit(old, "inputs.immutable", True)
    frozen_new = _edit(new, "inputs.immutable", True)
    assert diff_plans(_plan(provider, frozen_old), _plan(provider, frozen_new)).resources[0].op == "replace"


@pytest.mark.parametrize(("type_", "path", "old", "new", "op"), [
    ("aws:eks/nodeGroup:NodeGroup", "scalingConfig", {"minSize": 1, "maxSize": 2}, {"minSize": 1, "maxSize": 4}, "update"),
    ("aws:eks/nodeGroup:NodeGroup", "instanceTypes", ["t3.large"], ["m5.large"], "replace"),
    ("aws:eks/nodeGroup:NodeGroup", "diskSize", 20, 50, "replace"),
    ("aws:eks/nodeGroup:NodeGroup", "launchTemplate", {"id": "lt-1", "version": "1"}, {"id": "lt-1", "version": "2"}, "update"),
    ("aws:ec2/vpc:Vpc", "cidrBlock", "10.0.0.0/16", "10.1.0.0/16", "replace"),
    ("aws:ec2/vpc:Vpc", "tags", {"a": "1"}, {"a": "2"}, "update"),
    ("aws:ec2/subnet:Subnet", "availabilityZone", "us-east-1a", "us-east-1b", "replace"),
    ("aws:ec2/subnet:Subnet", "mapPublicIpOnLaunch", False, True, "update"),
    ("eks:index:Cluster", "name", "a", "b", "replace"),
    ("eks:index:Cluster", "subnetIds", ["s-1"], ["s-2"], "update"),
    ("aws:iam/role:Role", "name", "a", "b", "replace"),
    ("aws:iam/role:Role", "assumeRolePolicy", "{}", '{"Version": "2012-10-17"}', "update"),
    ("aws:sqs/queue:Queue", "fifoQueue", False, True, "replace"),
    ("aws:sqs/queue:Queue", "visibilityTimeoutSeconds", 30, 60, "update"),
    ("aws:kms/key:Key", "keyUsage", "ENCRYPT_DECRYPT", "SIGN_VERIFY", "replace"),
    ("aws:kms/key:Key", "enableKeyRotation", False, True, "update"),
    ("aws:sns/topic:Topic", "name", "a", "b", "update"),  # not in the table: shown as an update
    ("aws:s3/bucket:Bucket", "bucket", "a", "b", "replace"),
    ("aws:s3/bucket:Bucket", "objectLockEnabled", False, True, "replace"),
    ("aws:s3/bucket:Bucket", "forceDestroy", False, True, "update"),
    ("aws:s3/bucket:Bucket", "tags", {"a": "1"}, {"a": "2"}, "update"),
    ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "rules", [{"id": "a"}], [{"id": "b"}], "update"),
    ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "bucket", "a", "b", "replace"),
    ("aws:s3/bucketPolicy:BucketPolicy", "policy", "{}", '{"Version": "2012-10-17"}', "update"),
    ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "blockPublicAcls", False, True, "update"),
    ("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "bucket", "a", "b", "replace"),
    ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "rules",
     [{"a": 1}], [{"a": 2}], "update"),
    ("aws:sqs/queue:Queue", "redrivePolicy", "{}", '{"maxReceiveCount": 5}', "update"),
    ("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", "queueUrl", "https://q/a", "https://q/b", "replace"),
    ("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", "redriveAllowPolicy", "{}", '{"a": 1}', "update"),
    ("aws:ec2/routeTableAssociation:RouteTableAssociation", "subnetId", "subnet-1", "subnet-2", "replace"),
    ("aws:ec2/routeTableAssociation:RouteTableAssociation", "routeTableId", "rtb-1", "rtb-2", "update"),
    ("aws:ec2/routeTable:RouteTable", "vpcId", "vpc-1", "vpc-2", "replace"),
    ("aws:ec2/tag:Tag", "key", "a", "b", "replace"),
    ("aws:ec2/tag:Tag", "value", "a", "b", "update"),
    ("aws:ec2/internetGateway:InternetGateway", "vpcId", "vpc-1", "vpc-2", "update"),
    ("aws:ec2/vpc:Vpc", "region", "us-east-1", "us-west-2", "replace"),
    ("aws:eks/podIdentityAssociation:PodIdentityAssociation", "namespace", "a", "b", "replace"),
    ("aws:eks/podIdentityAssociation:PodIdentityAssociation", "roleArn", "arn:a", "arn:b", "update"),
    ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "policyArn", "arn:a", "arn:b", "replace"),
    ("aws:iam/rolePolicy:RolePolicy", "policy", "{}", '{"Version": "2012-10-17"}', "update"),
    ("aws:iam/rolePolicy:RolePolicy", "name", "a", "b", "replace"),
    ("aws:iam/policy:Policy", "description", "a", "b", "replace"),
    ("aws:eks/addon:Addon", "addonVersion", "v1.0.0-eksbuild.1", "v1.1.0-eksbuild.1", "update"),
    ("aws:sqs/queuePolicy:QueuePolicy", "queueUrl", "https://q/a", "https://q/b", "replace"),
    ("aws:cloudwatch/eventTarget:EventTarget", "rule", "a", "b", "replace"),
    ("aws:cloudwatch/eventTarget:EventTarget", "arn", "arn:a", "arn:b", "update"),
    ("aws:cloudwatch/logGroup:LogGroup", "retentionInDays", 7, 14, "update"),
    ("aws:ecr/repository:Repository", "encryptionConfigurations", [{"encryptionType": "AES256"}],
     [{"encryptionType": "KMS"}], "replace"),
])
def test_aws_replacement_rules(type_: str, path: str, old: Any, new: Any, op: str) -> None:
    assert _one(_res(type_, "r", {path: old}), _res(type_, "r", {path: new})).op == op


@pytest.fixture(scope="module")
def stack_plans() -> dict[str, dict[str, Any]]:
    """The repository's dev and prod plans."""
    return {stack: json.loads(dumps(to_plan(run_program(REPO, stack)))) for stack in ("dev", "prod")}


def test_every_aws_and_eks_type_of_the_stacks_has_replace_rules(stack_plans: dict[str, dict[str, Any]]) -> None:
    types = {r["type"] for plan in stack_plans.values() for r in plan["resources"] if r["type"].startswith(("aws:", "eks:"))}
    assert len(types) >= 20
    assert sorted(t for t in types if replace_inputs(t) is None) == []


def test_the_docstring_table_is_the_rules() -> None:
    rows = re.findall(r"^\| ((?:aws|eks):\S+) \| (.*) \|$", diff_module.__doc__ or "", re.MULTILINE)
    # Inputs named in parentheses are remarks (what does not replace, what the table cannot express).
    table = {type_: re.findall(r"``([^`]+)``", re.sub(r"\([^)]*\)", "", inputs)) for type_, inputs in rows}
    assert table and all(table[t] == replace_inputs(t) for t in table), table
    assert all(replace_inputs(t) is None or t in table for t in ("aws:s3/bucket:Bucket", *table))


def test_unknowns() -> None:
    vpc = "urn:pulumi:s::p::aws:ec2/vpc:Vpc::v"
    other = "urn:pulumi:s::p::aws:ec2/vpc:Vpc::w"
    subnet = {"vpcId": UNKNOWN, "cidrBlock": "10.0.1.0/24"}
    same = _one(_res("aws:ec2/subnet:Subnet", "s", subnet, property_dependencies={"vpcId": [vpc]}),
                _res("aws:ec2/subnet:Subnet", "s", subnet, property_dependencies={"vpcId": [vpc]}))
    assert same is None
    moved = _one(_res("aws:ec2/subnet:Subnet", "s", subnet, property_dependencies={"vpcId": [vpc]}),
                 _res("aws:ec2/subnet:Subnet", "s", subnet, property_dependencies={"vpcId": [other]}))
    assert (moved.op, moved.changes[0].note) == ("replace", "comes from other resources")
    now_unknown = _one(_res("aws:ec2/vpc:Vpc", "v", {"tags": {"a": "1"}}), _res("aws:ec2/vpc:Vpc", "v", {"tags": {"a": UNKNOWN}}))
    assert now_unknown.op == "update"
    assert show(now_unknown.changes[0].new) == "(known after apply)"


def test_provider_change_replaces() -> None:
    old = _k8s("core/v1:Namespace", {"metadata": {"name": "n"}}, provider="urn:pulumi:s::p::pulumi:providers:kubernetes::a")
    new = _k8s("core/v1:Namespace", {"metadata": {"name": "n"}}, provider="urn:pulumi:s::p::pulumi:providers:kubernetes::b")
    d = _one(old, new)
    assert (d.op, d.changes) == ("replace", ())
    assert d.reasons == ("its provider changed (pulumi:providers:kubernetes a -> pulumi:providers:kubernetes b)",)


def test_identical_plans_have_no_changes() -> None:
    plan = _load("apps-base.json")
    report = diff_plans(plan, plan)
    assert (report.resources, report.unchanged) == ([], len(plan["resources"]))
    assert "No resource changes." in render_markdown(report)


def test_changed_texts_show_their_changed_lines() -> None:
    text = diff_command(PLANS / "apps-base.json", PLANS / "apps-head.json", "text")
    assert '    data.script: changed, line by line:  [forces replacement]\n' in text
    assert "\n        -step two\n        +step 2\n" in text
    # A JSON document in a string is compared pretty-printed, one line per member.
    assert '\n        -      "Resource": "arn:aws:s3:::models/*"\n        +      "Resource": "arn:aws:s3:::models/v2/*"\n' in text
    markdown = diff_command(PLANS / "apps-base.json", PLANS / "apps-head.json", "markdown")
    assert "<details><summary><code>data.script</code>, line by line</summary>\n\n```diff\n@@ " in markdown
    assert "\n-step two\n+step 2\n" in markdown
    # Single-line texts still fold.
    assert "(302 chars)" in text


def test_line_diff_pairs() -> None:
    assert line_diff("a\nb\n", "a\nc\n") == ["@@ -1,2 +1,2 @@", " a", "-b", "+c"]
    assert line_diff("one line", "another line") is None
    assert line_diff('{"a": 1}', '{"a": 2}') == ["@@ -1,3 +1,3 @@", " {", '-  "a": 1', '+  "a": 2', " }"]
    assert line_diff("a\nb", UNKNOWN) is None and line_diff(SECRET, "a\nb") is None
    assert line_diff(MISSING, "a\nb") is None and line_diff(1, 2) is None


def test_a_backtick_fence_in_a_text_cannot_end_the_markdown_block() -> None:
    old = _k8s("core/v1:ConfigMap", {"data": {"readme": "intro\n```\nshell\n"}})
    new = _k8s("core/v1:ConfigMap", {"data": {"readme": "intro\n```\nbash\n"}})
    markdown = render_markdown(diff_plans(_plan(old), _plan(new)))
    assert "````diff\n" in markdown and "\n-shell\n+bash\n````\n" in markdown


def test_values_fold_and_secrets_stay_masked() -> None:
    assert show("x" * 500).endswith("(502 chars)")
    assert len(show("x" * 500)) < 120
    assert show(SECRET) == "(secret)"
    old = _res("aws:ssm/parameter:Parameter", "p", {"value": SECRET})
    new = _res("aws:ssm/parameter:Parameter", "p", {"value": SECRET, "tier": "Advanced"})
    assert "(secret)" not in render_json(diff_plans(_plan(old), _plan(new)))


# ---- resource options ---------------------------------------------------------------------------


def _options_diff(old: dict[str, Any], new: dict[str, Any], **options: Any) -> Any:
    return _one(_k8s("apps/v1:Deployment", old), _k8s("apps/v1:Deployment", new, **options))


def test_ignored_paths_are_unchanged() -> None:
    scaled = _edit(DEPLOYMENT, "spec.replicas", 3)
    assert _options_diff(DEPLOYMENT, scaled).op == "update"
    assert _options_diff(DEPLOYMENT, scaled, ignore_changes=["spec.replicas"]) is None
    # Only the ignored path: the image change still shows.
    both = _edit(scaled, "spec.template.spec.containers", [{"name": "c", "image": "i:2"}])
    d = _options_diff(DEPLOYMENT, both, ignore_changes=["spec.replicas"])
    assert [c.path_text for c in d.changes] == ["spec.template.spec.containers[0].image"]
    assert _options_diff(DEPLOYMENT, both, ignore_changes=["spec.template.spec.containers[*].image", "spec.replicas"]) is None
    assert _options_diff(DEPLOYMENT, both, ignore_changes=["spec"]) is None


def test_an_ignored_path_absent_before_stays_absent() -> None:
    # Pulumi resets to the old state: a value the old inputs lack is dropped, not created.
    labelled = _edit(DEPLOYMENT, "metadata.labels", {"a": "b"})
    assert _options_diff(DEPLOYMENT, labelled, ignore_changes=["metadata.labels"]) is None
    # Ignoring the one label drops it; the (now empty) labels map itself is still new.
    d = _options_diff(DEPLOYMENT, labelled, ignore_changes=['metadata["labels"].a'])
    assert [(c.path_text, c.new) for c in d.changes] == [("metadata.labels", {})]
    # A path through a level neither side has is a no-op, one through a missing level is left out.
    assert _options_diff(DEPLOYMENT, labelled, ignore_changes=["spec.strategy.type"]).op == "update"


def test_ignored_unknowns_from_other_resources_are_unchanged() -> None:
    vpc = "urn:pulumi:s::p::aws:ec2/vpc:Vpc::v"
    old = _res("aws:ec2/subnet:Subnet", "s", {"vpcId": UNKNOWN}, property_dependencies={"vpcId": [vpc]})
    new = _res("aws:ec2/subnet:Subnet", "s", {"vpcId": UNKNOWN}, property_dependencies={"vpcId": [vpc + "2"]},
               ignore_changes=["vpcId"])
    assert _one(old, new) is None


def test_replace_on_changes_replaces_and_says_why() -> None:
    labelled = _edit(DEPLOYMENT, "metadata.labels", {"a": "b"})
    d = _options_diff(DEPLOYMENT, labelled, replace_on_changes=["metadata.labels"])
    assert d.op == "replace" and d.changes[0].replaces
    assert d.reasons == ("metadata.labels changed, and replaceOnChanges names it",)
    assert _options_diff(DEPLOYMENT, labelled, replace_on_changes=["*"]).op == "replace"
    assert _options_diff(DEPLOYMENT, labelled, replace_on_changes=["spec.replicas"]).op == "update"
    # Ignored first, as Pulumi does: an ignored change replaces nothing.
    assert _options_diff(DEPLOYMENT, labelled, replace_on_changes=["metadata"], ignore_changes=["metadata.labels"]) is None


def test_a_renamed_resource_with_an_alias_is_the_same_resource() -> None:
    vpc = _res("aws:ec2/vpc:Vpc", "old-vpc", {"cidrBlock": "10.0.0.0/16"})
    subnet = _res("aws:ec2/subnet:Subnet", "s", {"vpcId": UNKNOWN}, property_dependencies={"vpcId": [vpc["urn"]]})
    renamed = _res("aws:ec2/vpc:Vpc", "new-vpc", {"cidrBlock": "10.0.0.0/16"}, aliases=[vpc["urn"]])
    subnet_after = _res("aws:ec2/subnet:Subnet", "s", {"vpcId": UNKNOWN}, property_dependencies={"vpcId": [renamed["urn"]]})
    report = diff_plans(_plan(vpc, subnet), _plan(renamed, subnet_after))
    # Nothing to do: the VPC only has a new URN, and the subnet's vpcId still comes from it.
    assert (report.resources, report.unchanged) == ([], 2)
    changed = _edit(renamed, "inputs.cidrBlock", "10.1.0.0/16")
    assert [(d.name, d.op) for d in diff_plans(_plan(vpc, subnet), _plan(changed, subnet_after)).resources] == [
        ("s", "replace"), ("new-vpc", "replace")]
    # Without the alias: a new resource and a deleted one.
    unaliased = _res("aws:ec2/vpc:Vpc", "new-vpc", {"cidrBlock": "10.0.0.0/16"})
    assert sorted((d.name, d.op) for d in diff_plans(_plan(vpc), _plan(unaliased)).resources) == [
        ("new-vpc", "create"), ("old-vpc", "delete")]


def test_delete_before_replace_is_shown() -> None:
    renamed = _edit(DEPLOYMENT, "metadata.name", "b")
    d = _options_diff(DEPLOYMENT, renamed, delete_before_replace=True)
    assert (d.op, d.delete_first) == ("replace", True)
    report = diff_plans(_plan(_k8s("apps/v1:Deployment", DEPLOYMENT)),
                        _plan(_k8s("apps/v1:Deployment", renamed, delete_before_replace=True)))
    assert json.loads(render_json(report))["resources"][0]["delete_before_replace"] is True
    assert "-/+ replace kubernetes:apps/v1:Deployment x (deleted before it is created again: deleteBeforeReplace)" in (
        render_text(report))
    assert "deleted before it is created again: deleteBeforeReplace" in render_markdown(report)
    # An update does not delete anything.
    assert _options_diff(DEPLOYMENT, _edit(DEPLOYMENT, "spec.replicas", 2), delete_before_replace=True).delete_first is False


@pytest.mark.parametrize(("text", "path"), [
    ("spec.replicas", ("spec", "replicas")),
    ('tags["kubernetes.io/role"]', ("tags", "kubernetes.io/role")),
    ('a["with \\"quote\\""].b', ("a", 'with "quote"', "b")),
    ("rules[0].cidr", ("rules", 0, "cidr")),
    ("a[*].b", ("a", "*", "b")),
    ("*", ("*",)),
    ('["root"][2]', ("root", 2)),
])
def test_property_paths(text: str, path: tuple[Any, ...]) -> None:
    assert property_path(text) == path


@pytest.mark.parametrize("text", ["", ".a", "a.", "a[", "a[x]", 'a["b', 'a["b"'])
def test_bad_property_paths(text: str) -> None:
    with pytest.raises(PlanError, match="property path"):
        property_path(text)


# ---- the Markdown size limit --------------------------------------------------------------------


def _big_pair(n: int, width: int) -> tuple[dict[str, Any], dict[str, Any]]:
    base = [_res("aws:ssm/parameter:Parameter", f"p{i:04}", {"value": "a" * width, "n": i}) for i in range(n)]
    head = [_res("aws:ssm/parameter:Parameter", f"p{i:04}", {"value": "b" * width, "n": -i}) for i in range(n)]
    return _plan(*base), _plan(*head)


@pytest.mark.parametrize(("n", "limit", "left_out"), [
    (20, MARKDOWN_LIMIT, None),
    (300, MARKDOWN_LIMIT, "before/after values are left out"),
    (1200, MARKDOWN_LIMIT, "per-input details are left out"),
    (5000, MARKDOWN_LIMIT, "more changed resources are not listed"),
])
def test_markdown_collapses_to_fit(n: int, limit: int, left_out: str | None) -> None:
    report = diff_plans(*_big_pair(n, 200))
    text = render_markdown(report, limit)
    assert len(text) <= limit
    assert f"**0 to create, {n} to update" in text
    if left_out is None:
        assert "Left out" not in text
    else:
        assert left_out in text


# ---- commands and their errors ------------------------------------------------------------------


def test_cost_missing_is_said_not_fatal(tmp_path: Path) -> None:
    plan = _load("apps-base.json")
    plan["config"] = {}
    (tmp_path / "a.json").write_text(json.dumps(plan))
    out = diff_command(tmp_path / "a.json", tmp_path / "a.json", "text")
    assert "capacity bounds not estimated: plan of stack 'dev' has no aws:region in its config; pass --region" in out


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not a JSON plan file"),
    ('{"schema_version": 3}', "schema_version is 3; this cortex reads versions 1 and 2"),
    ('{"schema_version": 2, "project": "p", "stack": "s", "config": {}, "resources": []}', "missing field 'outputs'"),
])
def test_bad_plan_files_are_one_line(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    for base, head in ((bad, PLANS / "apps-head.json"), (PLANS / "apps-base.json", bad)):
        with pytest.raises(PlanError, match=message) as e:
            diff_command(base, head, "text")
        assert "\n" not in str(e.value) and str(bad) in str(e.value)


def test_unknown_format() -> None:
    with pytest.raises(PlanError, match="--format 'html' is not known; allowed: markdown, text, json"):
        diff_command(PLANS / "apps-base.json", PLANS / "apps-head.json", "html")


# ---- blast radius on the real stacks -------------------------------------------------------------

@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    """A copy of the repository's program (Pulumi.yaml + stacks/) to vary the dev config in."""
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    return tmp_path


def _plan_dev(program: Path) -> dict[str, Any]:
    return json.loads(dumps(to_plan(run_program(program, "dev"))))


def _edit_yaml(path: Path, change: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_blast_radius_image_change_updates_one_resource(stack_dir: Path) -> None:
    base = _plan_dev(stack_dir)
    _edit_yaml(stack_dir / "stacks" / "apis" / "dev.yaml",
               lambda apis: apis[0]["pod"]["containers"][0].update(image="quay.io/cortexlabs-test/realtime-hello-world-cpu:v2"))
    report = diff_plans(base, _plan_dev(stack_dir))
    assert [(d.op, d.type) for d in report.resources] == [("update", "kubernetes:apps/v1:Deployment")]


def test_blast_radius_adding_an_api_only_creates(stack_dir: Path) -> None:
    base = _plan_dev(stack_dir)

    def add(apis: list[dict[str, Any]]) -> None:
        extra = copy.deepcopy(apis[0])
        extra["name"] = "second-api"
        apis.append(extra)

    _edit_yaml(stack_dir / "stacks" / "apis" / "dev.yaml", add)
    report = diff_plans(base, _plan_dev(stack_dir))
    assert report.resources and {d.op for d in report.resources} == {"create"}


def test_blast_radius_max_instances_updates_only_that_node_pool(stack_dir: Path) -> None:
    base = _plan_dev(stack_dir)
    _edit_yaml(stack_dir / "stacks" / "Pulumi.dev.yaml",
               lambda doc: doc["config"]["cortex:cluster"]["node_groups"][0].update(max_instances=7))
    report = diff_plans(base, _plan_dev(stack_dir))
    # And the node group's max_instances in the Prometheus rules (its "at max_instances" alert).
    assert sorted((d.op, d.type) for d in report.resources) == [
        ("update", "kubernetes:helm.sh/v3:Release"), ("update", "kubernetes:karpenter.sh/v1:NodePool")]
    pool = next(d for d in report.resources if d.type == "kubernetes:karpenter.sh/v1:NodePool")
    assert all(c.path[:2] == ("spec", "limits") for c in pool.changes)
    (release,) = [d for d in report.resources if d.type == "kubernetes:helm.sh/v3:Release"]
    assert release.name.endswith("-prometheus")
    assert all(c.path[:3] == ("values", "serverFiles", "recording_rules.yml") for c in release.changes)


def _plan_stack(program: Path, stack: str) -> dict[str, Any]:
    return json.loads(dumps(to_plan(run_program(program, stack))))


def test_blast_radius_init_replicas_changes_nothing(stack_dir: Path) -> None:
    # KEDA owns spec.replicas after creation (ignore_changes); Pulumi would send nothing.
    base = _plan_stack(stack_dir, "prod")
    _edit_yaml(stack_dir / "stacks" / "Pulumi.prod.yaml",
               lambda doc: doc["config"]["cortex:apis"][0]["autoscaling"].update(init_replicas=3))
    head = _plan_stack(stack_dir, "prod")
    deployment = next(r for r in head["resources"] if r["name"] == "text-generator-deployment")
    assert deployment["inputs"]["spec"]["replicas"] == 3 and deployment["ignore_changes"] == ["spec.replicas"]
    report = diff_plans(base, head)
    assert report.resources == []
