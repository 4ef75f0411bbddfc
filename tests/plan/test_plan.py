from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cortex_iac.errors import PlanError
from cortex_iac.plan.engine import run_program
from cortex_iac.plan.plan import (
    SCHEMA_VERSION,
    dumps,
    kubernetes_objects,
    load_plan,
    to_plan,
    tree_lines,
    write,
    write_manifests,
)

TINY = Path(__file__).parent / "fixtures" / "tiny"


def test_plan_is_byte_identical_across_runs(tmp_path: Path) -> None:
    first = dumps(to_plan(run_program(TINY, "dev")))
    second = dumps(to_plan(run_program(TINY, "dev")))
    assert first == second
    write(to_plan(run_program(TINY, "dev")), tmp_path / "plan.json")  # what cortex plan --json writes
    assert (tmp_path / "plan.json").read_text(encoding="utf-8") == first
    doc = json.loads(first)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["config"] == {"tiny:greeting": "hello", "tiny:labels": '{"team": "ml"}', "db:password": "$secret"}
    assert [r["urn"] for r in doc["resources"]] == sorted(r["urn"] for r in doc["resources"])
    assert {r["type"] for r in doc["resources"]} == {
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "pulumi:providers:kubernetes",
        "kubernetes:core/v1:ConfigMap",
        "kubernetes:core/v1:Secret",
    }


def test_kubernetes_objects_are_the_manifests(tmp_path: Path) -> None:
    objects = kubernetes_objects(run_program(TINY, "dev"))
    assert [o["kind"] for o in objects] == ["ConfigMap", "Secret"]
    assert objects[0] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "greeting", "namespace": "default", "labels": {"team": "ml"}},
        "data": {"greeting": "hello", "vpc": "$unknown"},
    }
    paths = write_manifests(objects, tmp_path)
    assert [p.name for p in paths] == ["configmap.default.greeting.yaml", "secret.default.password.yaml"]
    assert yaml.safe_load(paths[0].read_text()) == objects[0]


def test_two_objects_with_one_file_name_is_an_error(tmp_path: Path) -> None:
    obj = {"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}}
    with pytest.raises(PlanError, match="same kind, namespace and name"):
        write_manifests([obj, obj], tmp_path)


def test_tree_nests_children_under_parents() -> None:
    lines = tree_lines(run_program(TINY, "dev"))
    assert lines.index("  aws:ec2/subnet:Subnet  subnet") == lines.index("aws:ec2/vpc:Vpc  vpc") + 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a JSON plan file"),
        ("[]", "a plan file is a JSON object, got list"),
        ('{"schema_version": 99}', "schema_version is 99; this cortex reads versions 1 and 2"),
        ('{"schema_version": true}', "schema_version is True; this cortex reads versions 1 and 2"),
        ('{"schema_version": 2, "project": "p", "stack": "s", "config": {}, "resources": []}', "missing field 'outputs'"),
        (
            '{"schema_version": 2, "project": "p", "stack": "s", "config": {}, "outputs": {}, "resources": [{"urn": "u"}]}',
            r"resources\[0\] is missing type, name, inputs",
        ),
    ],
)
def test_bad_plan_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(content)
    with pytest.raises(PlanError, match=message):
        load_plan(path)


def test_plan_resources_carry_their_resource_options() -> None:
    doc = json.loads(dumps(to_plan(run_program(TINY, "dev"))))
    assert SCHEMA_VERSION == 2
    for r in doc["resources"]:
        assert (r["ignore_changes"], r["replace_on_changes"], r["delete_before_replace"], r["aliases"]) == (
            [], [], False, []), r["urn"]


def test_version_1_plans_are_read_with_no_resource_options(tmp_path: Path) -> None:
    # A pull request's base commit may be planned by an older cortex.
    doc = json.loads(dumps(to_plan(run_program(TINY, "dev"))))
    doc["schema_version"] = 1
    for r in doc["resources"]:
        for key in ("ignore_changes", "replace_on_changes", "delete_before_replace", "aliases"):
            del r[key]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    loaded = load_plan(path)
    assert all((r["ignore_changes"], r["replace_on_changes"], r["delete_before_replace"], r["aliases"]) == (
        [], [], False, []) for r in loaded["resources"])
