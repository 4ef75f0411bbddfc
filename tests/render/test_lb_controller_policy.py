"""The load balancer controller's policy: the vendored upstream file minus its WAF/Shield grants."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from cortex_iac.errors import CortexError
from cortex_iac.render import addons
from cortex_iac.versions import AWS_LOAD_BALANCER_CONTROLLER_POLICY_FILE


def _actions(policy: dict[str, Any]) -> list[str]:
    return [a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])]


def test_upstream_file_is_read_unchanged() -> None:
    text = resources.files("cortex_iac.data").joinpath(AWS_LOAD_BALANCER_CONTROLLER_POLICY_FILE).read_text()
    assert addons.upstream_aws_load_balancer_controller_policy() == json.loads(text)


def test_policy_is_upstream_minus_exactly_the_waf_and_shield_actions() -> None:
    upstream = addons.upstream_aws_load_balancer_controller_policy()
    policy = addons.aws_load_balancer_controller_policy()
    removed = sorted(set(_actions(upstream)) - set(_actions(policy)))
    assert removed == sorted(addons.LOAD_BALANCER_CONTROLLER_UNUSED_ACTIONS)
    assert all(a.split(":")[0] in {"waf-regional", "wafv2", "shield"} or a == "elasticloadbalancing:SetWebAcl"
               for a in removed)
    assert not any(a.startswith(("waf", "shield")) for a in _actions(policy))
    # Everything else as published: same statements in order, conditions and resources untouched.
    kept = [st for st in upstream["Statement"]
            if set(_actions({"Statement": [st]})) - addons.LOAD_BALANCER_CONTROLLER_UNUSED_ACTIONS]
    assert len(policy["Statement"]) == len(kept)
    for ours, theirs in zip(policy["Statement"], kept, strict=True):
        assert {k: v for k, v in ours.items() if k != "Action"} == {k: v for k, v in theirs.items() if k != "Action"}
        assert _actions({"Statement": [ours]}) == [a for a in _actions({"Statement": [theirs]})
                                                  if a not in addons.LOAD_BALANCER_CONTROLLER_UNUSED_ACTIONS]


def test_the_controller_does_not_use_what_is_removed() -> None:
    values = addons.aws_load_balancer_controller_values("c", "us-east-1", "vpc-1", {})
    assert (values["enableShield"], values["enableWaf"], values["enableWafv2"]) == (False, False, False)


def test_a_renamed_action_upstream_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(addons, "LOAD_BALANCER_CONTROLLER_UNUSED_ACTIONS",
                        addons.LOAD_BALANCER_CONTROLLER_UNUSED_ACTIONS | {"wafv2:Renamed"})
    with pytest.raises(CortexError, match="no longer grants"):
        addons.aws_load_balancer_controller_policy()
