"""A real `pulumi up` / `destroy` of the dev stack through the Pulumi Automation API.

Needs what this project's CI machines do not have: the pulumi CLI, AWS credentials and money. It runs
only when the CLI is on PATH and CORTEX_E2E=1 is set (see the README).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# A real `pulumi up` and destroy of the dev stack in an AWS account: this machine and CI have neither
# the Pulumi CLI nor AWS credentials, so it runs only where both are given and CORTEX_E2E=1 asks for it
# (README, "End-to-end against AWS").
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("pulumi") is None or os.environ.get("CORTEX_E2E") != "1",
        reason="needs the pulumi CLI on PATH, AWS credentials and CORTEX_E2E=1",
    ),
]

REPO = Path(__file__).resolve().parents[2]


def test_dev_stack_up_and_destroy() -> None:
    from pulumi import automation as auto

    stack_name = os.environ.get("CORTEX_E2E_STACK", "e2e-dev")
    # The e2e stack is the dev stack's config under another name, so it never touches a real dev stack.
    config_file = REPO / "stacks" / f"Pulumi.{stack_name}.yaml"
    shutil.copyfile(REPO / "stacks" / "Pulumi.dev.yaml", config_file)
    stack = auto.create_or_select_stack(stack_name=stack_name, work_dir=str(REPO))
    try:
        up = stack.up(on_output=print)
        assert up.summary.result == "succeeded"
        assert "hello-world" in up.outputs["api_urls"].value
    finally:
        stack.destroy(on_output=print)
        stack.workspace.remove_stack(stack_name)
        config_file.unlink(missing_ok=True)
