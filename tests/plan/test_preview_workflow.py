"""The pull-request preview workflow: valid for GitHub, fork-safe, comment kept in place."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "preview.yml"
TEXT = WORKFLOW.read_text()
DOC: dict[Any, Any] = yaml.safe_load(TEXT)
JOBS = DOC["jobs"]


def _steps(job: str) -> list[dict[str, Any]]:
    return JOBS[job]["steps"]


def _uses(job: str, action: str) -> dict[str, Any]:
    return next(s for s in _steps(job) if s.get("uses", "").startswith(action + "@"))


def test_valid_against_the_github_workflow_schema() -> None:
    # check-jsonschema is a dev dependency (pyproject.toml): it validates workflow files.
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_on_pull_request_never_pull_request_target() -> None:
    # PyYAML reads the key `on` as True (YAML 1.1).
    triggers = DOC.get("on", DOC.get(True))
    assert set(triggers) == {"pull_request"}
    assert "pull_request_target" not in TEXT.replace("`pull_request_target`", "")
    assert DOC["permissions"] == {"contents": "read"}


def test_actions_are_pinned_to_commits() -> None:
    uses = re.findall(r"uses: (\S+)@(\S+)(.*)", TEXT)
    assert uses
    for action, ref, comment in uses:
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{action} is not pinned to a commit"
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), f"{action} lacks its release tag comment"


def test_plan_diff_plans_both_commits_and_updates_one_comment_per_stack() -> None:
    job = JOBS["plan-diff"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    checkouts = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert [c["with"]["path"] for c in checkouts] == ["head", "base"]
    assert checkouts[1]["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert all(c["with"]["persist-credentials"] is False for c in checkouts)
    script = next(s for s in job["steps"] if s.get("id") == "diff")["run"]
    assert 'venv-base/bin/cortex plan base --stack "$STACK" --json base.json' in script
    assert 'venv-head/bin/cortex plan head --stack "$STACK" --json head.json' in script
    assert "venv-head/bin/cortex diff base.json head.json --format markdown" in script
    marker = re.search(r'marker="(<!-- cortex-preview:\$STACK -->)"', script)
    assert marker
    find = _uses("plan-diff", "peter-evans/find-comment")
    assert find["with"]["body-includes"] == "<!-- cortex-preview:${{ matrix.stack }} -->"
    update = _uses("plan-diff", "peter-evans/create-or-update-comment")
    assert update["with"]["comment-id"] == "${{ steps.find.outputs.comment-id }}"
    assert update["with"]["edit-mode"] == "replace"
    # Forks get a read-only token: no comment there, the job summary and artifact instead.
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    assert find["if"] == update["if"] == same_repo
    assert "GITHUB_STEP_SUMMARY" in script


def test_pulumi_preview_only_with_credentials() -> None:
    check = JOBS["credentials"]["steps"][0]
    assert set(check["env"]) == {"PULUMI_ACCESS_TOKEN", "AWS_ROLE_ARN"}
    job = JOBS["pulumi-preview"]
    assert job["needs"] == "credentials"
    assert job["if"] == "needs.credentials.outputs.present == 'true'"
    preview = _uses("pulumi-preview", "pulumi/actions")
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["comment-on-pr"] is True
    assert preview["env"] == {"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}
    # No secret is visible to the credential-free job.
    assert "secrets." not in yaml.safe_dump(JOBS["plan-diff"])


def _diff_script() -> str:
    return next(s for s in JOBS["plan-diff"]["steps"] if s.get("id") == "diff")["run"]


def test_diff_step_posts_headline_summary_and_cost_in_one_comment(tmp_path: Path) -> None:
    # The step's own script, run with a `cortex` per side whose `plan` copies a stored plan of the
    # stack program (a VPC change) and whose `diff` is this checkout's cortex.
    plans = Path(__file__).parent / "fixtures" / "stack"
    for side, plan in (("base", "base.json"), ("head", "vpc-cidr.json")):
        bin_dir = tmp_path / f"venv-{side}" / "bin"
        bin_dir.mkdir(parents=True)
        cortex = bin_dir / "cortex"
        cortex.write_text(
            "#!/usr/bin/env bash\nset -eu\n"
            f'if [ "$1" = plan ]; then cp {plans / plan} "${{@: -1}}"; exit 0; fi\n'
            f'exec {sys.executable} -m cortex_iac.cli "$@"\n'
        )
        cortex.chmod(0o755)
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    env = {"STACK": "dev", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output),
           "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(["bash", "-e", "-c", _diff_script()], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    comment = (tmp_path / "comment.md").read_text()
    assert comment.startswith("<!-- cortex-preview:dev -->\n### cortex diff:")
    assert len(comment) < 65_536
    assert "**Do not miss:**" in comment, comment[:2000]
    headline = comment.index("**Do not miss:**")
    assert "[VPC cortex-demo-vpc is replaced (cidrBlock 192.168.0.0/16 → 10.1.0.0/16)" in comment
    assert headline < comment.index("#### Monthly cost") < comment.index("#### Resources")
    assert comment.count("<details>") >= 59  # every replaced resource collapsed
    # Forks: the same text in the job summary; the JSON and pulumi-json kept as artifacts.
    assert summary.read_text() == comment
    assert json.loads((tmp_path / "diff.json").read_text())["headline"][0]["rule"] == "cluster"
    assert "changeSummary" in json.loads((tmp_path / "preview.json").read_text())
    assert "preview.json" in _uses("plan-diff", "actions/upload-artifact")["with"]["path"]
