"""The recording engine's speed-ups (cortex_iac/plan/engine.py, docs/design.md "Plan speed") change
nothing a plan shows: each test records the same program with them and with the SDK's plain path."""

from __future__ import annotations

import asyncio
import gc
import re
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime.resource as pulumi_runtime_resource
import pulumi.runtime.resource_cycle_breaker as pulumi_cycle_breaker
import pulumi_aws as aws
import pytest
from google.protobuf import json_format, struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.runtime import rpc

from cortex_iac.errors import PlanError
from cortex_iac.plan import engine
from cortex_iac.plan.engine import record, run_program
from cortex_iac.plan.plan import dumps, to_plan
from tests.plan.fixtures.stacks import plan_path, scenario_plan

TINY = Path(__file__).parent / "fixtures" / "tiny"
_SDK_REACHABLE = pulumi_cycle_breaker._reachable  # the SDK's own, as imported (no run under way)
REPO = Path(__file__).resolve().parents[2]


def _plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_SPEEDUPS", False)


def test_stack_plan_is_the_same_without_the_speed_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = dumps(scenario_plan(None))
    assert fast == plan_path(None).read_text()  # the stored plan (tests/plan/fixtures/stack/base.json)
    _plain_path(monkeypatch)
    assert dumps(scenario_plan(None)) == fast


def test_ready_program_plans_the_same_without_the_speed_ups_and_pumps_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The dev stack has all five kinds: every component registers early without a second recording.
    runs: list[bool] = []
    record_once = engine._record_once

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(kwargs["pumped"])
        return record_once(*args, **kwargs)

    monkeypatch.setattr(engine, "_record_once", counted)
    fast = dumps(to_plan(run_program(REPO, "dev")))
    assert runs == [True]
    _plain_path(monkeypatch)
    assert dumps(to_plan(run_program(REPO, "dev"))) == fast


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
    stack_trace, reachable = pulumi_runtime_resource._get_stack_trace, pulumi_cycle_breaker._reachable
    record(lambda: aws.ec2.Vpc("a", cidr_block="10.0.0.0/16"), preview=True)
    with pytest.raises(Exception, match="data source"):
        record(lambda: aws.get_caller_identity(), preview=True)
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen
    assert gc.isenabled()
    assert pulumi_runtime_resource._get_stack_trace is stack_trace
    assert pulumi_cycle_breaker._reachable is reachable
    assert all(not loop.inline for loop in engine._OWN_LOOPS.values())


def test_the_shims_apply_to_the_pinned_pulumi() -> None:
    # When constraints.txt moves to another pulumi, check the shimmed functions there (same names and
    # arguments; _get_stack_trace's result only sent to the engine; _reachable the same walk over
    # _direct_computed_dependencies) and add the version to the list.
    pin = re.search(r"^pulumi==(\S+)$", (REPO / "constraints.txt").read_text(), re.MULTILINE)
    assert pin is not None
    assert pin.group(1) in engine._SHIM_VERSIONS
    assert engine._shims_apply()


class _Node:
    """A stand-in for a resource in the SDK's cycle check: only its recorded dependencies matter."""

    def __init__(self, index: int) -> None:
        self.index = index


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=30),
        st.integers(0, n - 1),
        st.integers(0, n - 1),
    )
))
def test_the_cycle_check_shim_answers_as_the_sdk(case: tuple[int, list[tuple[int, int]], int, int]) -> None:
    n, edges, start, goal = case
    nodes = [_Node(i) for i in range(n)]
    for a, b in edges:
        deps: set[_Node] = getattr(nodes[a], pulumi_cycle_breaker._DEPENDENCIES_PROPERTY, set())
        setattr(nodes[a], pulumi_cycle_breaker._DEPENDENCIES_PROPERTY, deps | {nodes[b]})
    sdk = _SDK_REACHABLE(from_resource=nodes[start], to_resource=nodes[goal])  # type: ignore[arg-type]
    assert engine._reachable(from_resource=nodes[start], to_resource=nodes[goal]) is sdk  # type: ignore[arg-type]


# Registering while the program runs (engine._Pump): the same recording as the SDK's plain path, and
# registrations done before the program has finished.


class _Group(pulumi.ComponentResource):
    def __init__(self, name: str, *, stray: bool = False) -> None:
        super().__init__("test:index:Group", name)
        self.member = pulumi.CustomResource("test:index:Member", f"{name}-member", {"n": name},
                                            opts=pulumi.ResourceOptions(parent=self))
        if stray:
            # A top-level resource declared while this component is under construction: no pump here.
            pulumi.CustomResource("test:index:Stray", f"{name}-stray", {"of": self.member.urn})
        self.register_outputs({})


def test_registrations_run_while_the_program_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    def program(seen: list[str]) -> None:
        first = _Group("first")
        first.member.urn.apply(seen.append)
        _Group("second")  # a top-level resource: what was declared before registers now
        seen.append(f"declared {len(seen)}")

    pumped: list[str] = []
    fast = record(lambda: program(pumped), preview=True)
    assert pumped[0].endswith("::first-member") and pumped[1] == "declared 1"
    _plain_path(monkeypatch)
    plain: list[str] = []
    assert dumps(to_plan(record(lambda: program(plain), preview=True))) == dumps(to_plan(fast))
    assert plain[0] == "declared 0"  # the SDK's plain path: nothing registers before the program ends


def _late_child_program() -> None:
    group = _Group("group", stray=True)
    dependent = pulumi.CustomResource("test:index:Dependent", "dependent", {},
                                      opts=pulumi.ResourceOptions(depends_on=[group]))
    pulumi.CustomResource("test:index:Other", "other", {"d": dependent.urn})  # pumps: dependent registers
    # A child added to the group after that: dependent depends on it too (the group's children are
    # read when dependent registers, at the end on the SDK's own path). Recorded again, unpumped.
    pulumi.CustomResource("test:index:Member", "late", {}, opts=pulumi.ResourceOptions(parent=group))

    def in_a_callback(urn: str) -> None:
        pulumi.CustomResource("test:index:FromCallback", "from-callback", {"u": urn},
                              opts=pulumi.ResourceOptions(parent=group))

    dependent.urn.apply(in_a_callback)


def test_a_child_added_after_registrations_ran_records_the_program_again(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []

    def counted() -> None:
        runs.append(1)
        _late_child_program()

    fast = record(counted, preview=True)
    assert len(runs) == 2
    dependent = fast.find("test:index:Dependent", "dependent")
    assert any(urn.endswith("::late") for urn in dependent.dependencies)
    _plain_path(monkeypatch)
    assert dumps(to_plan(record(_late_child_program, preview=True))) == dumps(to_plan(fast))


def test_a_failing_or_async_program_under_the_pump() -> None:
    def failing() -> None:
        _Group("one")
        _Group("two")
        raise PlanError("the program's own error")

    with pytest.raises(PlanError, match="the program's own error"):
        record(failing, preview=True)

    async def asynchronous() -> None:
        _Group("one")
        await asyncio.sleep(0)
        _Group("two")

    recording = record(asynchronous, preview=True)
    assert [r.name for r in recording.of_type("test:index:Member")] == ["one-member", "two-member"]


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
