"""The recording engine's speed-ups (cortex_iac/plan/engine.py, docs/design.md "Plan speed") change
nothing a plan shows: each test records the same program with them and with the SDK's plain path."""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.resource as pulumi_runtime_resource
import pulumi_aws as aws
import pytest
from google.protobuf import json_format, struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.runtime import rpc

from cortex_iac.plan import engine
from cortex_iac.plan.engine import record, run_program
from cortex_iac.plan.plan import dumps, to_plan
from tests.plan.fixtures.stacks import plan_path, scenario_plan

TINY = Path(__file__).parent / "fixtures" / "tiny"
REPO = Path(__file__).resolve().parents[2]


def _plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_SPEEDUPS", False)


def test_stack_plan_is_the_same_without_the_speed_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = dumps(scenario_plan(None))
    assert fast == plan_path(None).read_text()  # the stored plan (tests/plan/fixtures/stack/base.json)
    _plain_path(monkeypatch)
    assert dumps(scenario_plan(None)) == fast


def test_program_plan_is_the_same_without_the_speed_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = dumps(to_plan(run_program(TINY, "dev")))
    _plain_path(monkeypatch)
    assert dumps(to_plan(run_program(TINY, "dev"))) == fast


def _awkward_program() -> None:
    # What the stacks do not have but programs may: secrets nested in lists and maps, nulls, floats,
    # assets, outputs of one resource as inputs of the next. (Not resource references among the
    # inputs: Pulumi's mock monitor cannot read those back in preview, with or without the speed-ups.)
    vpc = aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16", tags={"a": "1"})
    holder = pulumi.CustomResource(
        "test:index:Holder",
        "holder",
        {
            "nested": {"list": [1, 2.5, None, {"deep": pulumi.Output.secret("x")}], "none": None, "empty": {}},
            "secret": pulumi.Output.secret({"k": "v"}),
            "unknown": vpc.arn,
            "asset": pulumi.StringAsset("text"),
            "flag": True,
        },
    )
    user = pulumi.CustomResource(
        "test:index:User",
        "user",
        {
            "nested_back": holder.nested,  # type: ignore[attr-defined]  # an output of the holder, set by the SDK
            "list_back": holder.nested.apply(lambda n: n["list"]),  # type: ignore[attr-defined]
            "unknown_back": holder.unknown,  # type: ignore[attr-defined]
            "secret_back": holder.secret,  # type: ignore[attr-defined]
        },
        opts=pulumi.ResourceOptions(depends_on=[holder]),
    )
    pulumi.export("nested", holder.nested)  # type: ignore[attr-defined]
    pulumi.export("user", user.list_back)  # type: ignore[attr-defined]


def test_unusual_inputs_plan_the_same_without_the_speed_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = record(_awkward_program, preview=True)
    _plain_path(monkeypatch)
    plain = record(_awkward_program, preview=True)
    assert dumps(to_plan(fast)) == dumps(to_plan(plain))
    user = fast.find("test:index:User", "user")
    assert user.inputs["nested_back"] == "$secret" and user.inputs["unknown_back"] == "$unknown"
    assert user.inputs["list_back"] == "$secret"


def test_the_run_leaves_the_collector_and_the_sdk_as_it_found_them() -> None:
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    stack_trace = pulumi_runtime_resource._get_stack_trace
    record(lambda: aws.ec2.Vpc("a", cidr_block="10.0.0.0/16"), preview=True)
    with pytest.raises(Exception, match="data source"):
        record(lambda: aws.get_caller_identity(), preview=True)
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen
    assert gc.isenabled()
    assert pulumi_runtime_resource._get_stack_trace is stack_trace


def test_the_stack_trace_shim_applies_to_the_pinned_pulumi() -> None:
    # When constraints.txt moves to another pulumi, check _get_stack_trace there (same name, no
    # arguments, its result only sent to the engine) and add the version to the shim's list.
    pin = re.search(r"^pulumi==(\S+)$", (REPO / "constraints.txt").read_text(), re.MULTILINE)
    assert pin is not None
    assert pin.group(1) in engine._STACK_TRACE_SHIM_VERSIONS
    assert engine._stack_trace_shim_applies()


# JSON-like values, and the wire forms the SDK sends for secrets, resource references and assets.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.just(rpc.UNKNOWN),
)
_keys = st.text(max_size=4)


def _special(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    sig = engine._SIG_KEY
    return st.one_of(
        st.builds(lambda v: {sig: engine._SIG_SECRET, "value": v}, children),
        st.builds(lambda u: {sig: engine._SIG_RESOURCE, "urn": u}, st.text(max_size=5)),
        st.builds(lambda p: {sig: engine._SIG_ASSET, "path": p}, st.text(max_size=5)),
    )


_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4), _special(children)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=5))
def test_one_pass_conversion_is_the_two_step_one(value: dict[str, Any]) -> None:
    struct = struct_pb2.Struct()
    struct.update(value)
    assert engine._plain_struct(struct) == engine._plain(json_format.MessageToDict(struct))
