"""Every IAM policy document the stacks declare: no wildcard action anywhere, and no write action on
``Resource: "*"`` outside the upstream load balancer controller policy (as published, minus what
cortex_iac subtracts, render.addons.aws_load_balancer_controller_policy)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cortex_iac.plan.engine import Recording, run_program
from cortex_iac.render.addons import aws_load_balancer_controller_policy

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = [(REPO, "dev"), (REPO, "prod"), (REPO / "examples" / "own-program", "dev")]
# Actions that only read: IAM's own access levels List and Read start with these verbs.
READ_VERBS = ("Describe", "Get", "List")


@pytest.fixture(scope="module", params=PROGRAMS, ids=lambda p: f"{p[0].name}-{p[1]}")
def recording(request: pytest.FixtureRequest) -> Recording:
    program_dir, stack = request.param
    return run_program(program_dir, stack, preview=True)


def _documents(value: Any) -> Iterator[dict[str, Any]]:
    """Policy documents anywhere in a resource's inputs (JSON strings or objects with a Statement)."""
    if isinstance(value, str) and value.lstrip().startswith("{") and "Statement" in value:
        try:
            value = json.loads(value)
        except ValueError:
            return
    if isinstance(value, dict):
        if "Statement" in value:
            yield value
        else:
            for v in value.values():
                yield from _documents(v)
    elif isinstance(value, list):
        for v in value:
            yield from _documents(v)


def _listed(statement: dict[str, Any], key: str) -> list[str]:
    value = statement.get(key, [])
    return [value] if isinstance(value, str) else list(value)


def _policies(recording: Recording) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{r.type} {r.name}", doc) for r in recording.resources for doc in _documents(r.inputs)]


def test_the_stacks_declare_policy_documents(recording: Recording) -> None:
    assert len(_policies(recording)) >= 5  # trust policies, the controllers' policies, API roles


def test_no_wildcard_action_anywhere(recording: Recording) -> None:
    found = [(where, a) for where, doc in _policies(recording) for st in doc["Statement"]
             for a in _listed(st, "Action") + _listed(st, "NotAction") if "*" in a]
    assert found == []
    assert not [where for where, doc in _policies(recording) for st in doc["Statement"] if "NotAction" in st]


def test_no_write_on_every_resource_outside_the_upstream_controller_policy(recording: Recording) -> None:
    upstream = aws_load_balancer_controller_policy()
    found = []
    for where, doc in _policies(recording):
        if doc == upstream:
            continue
        for st in doc["Statement"]:
            if st.get("Effect") == "Allow" and "*" in _listed(st, "Resource"):
                writes = [a for a in _listed(st, "Action") if not a.split(":", 1)[1].startswith(READ_VERBS)]
                if writes:
                    found.append((where, writes))
    assert found == []


def test_the_exemption_is_only_the_controller_policy_as_rendered(recording: Recording) -> None:
    exempt = [where for where, doc in _policies(recording) if doc == aws_load_balancer_controller_policy()]
    assert len(exempt) == 1 and "load-balancer-controller" in exempt[0]
