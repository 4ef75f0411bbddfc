from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cortex_iac.cli import app

TINY = Path(__file__).parent / "plan" / "fixtures" / "tiny"
runner = CliRunner()


def test_plan_prints_tree_and_writes_json_and_manifests(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", str(TINY), "--stack", "dev", "--json", str(tmp_path / "p.json"), "--manifests", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "aws:ec2/vpc:Vpc  vpc" in result.output
    assert "5 resources, 2 Kubernetes objects, stack 'dev'" in result.output
    assert json.loads((tmp_path / "p.json").read_text())["stack"] == "dev"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["configmap.default.greeting.yaml", "secret.default.password.yaml"]


def test_plan_of_a_missing_stack_is_one_line_and_exit_1() -> None:
    result = runner.invoke(app, ["plan", str(TINY), "--stack", "nope"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {TINY}/Pulumi.nope.yaml: no such stack config; stacks here: dev"
    ]
