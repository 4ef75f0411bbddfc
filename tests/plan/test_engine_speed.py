"""The recording engine's speed-ups (cortex_iac/plan/engine.py, docs/design.md "Plan speed") change
nothing a plan shows: each test records the same program with them and with the SDK's plain path."""

from __future__ import annotations

import asyncio
import gc
import re
import typing
from pathlib import Path
from typing import Any

import pulumi
import pulumi.output as pulumi_output
import pulumi.runtime.resource as pulumi_runtime_resource
import pulumi.runtime.resource_cycle_breaker as pulumi_cycle_breaker
import pulumi.runtime.sync_await
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
    originals = [(module, name, getattr(module, name)) for module, name, _ in engine._SHIMS]
    assert all(original is not shim for (_, _, original), (_, _, shim) in zip(originals, engine._SHIMS, strict=True))
    record(lambda: aws.ec2.Vpc("a", cidr_block="10.0.0.0/16"), preview=True)
    with pytest.raises(Exception, match="data source"):
        record(lambda: aws.get_caller_identity(), preview=True)
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen
    assert gc.isenabled()
    assert all(getattr(module, name) is original for module, name, original in originals)
    assert all(not loop.inline for loop in engine._OWN_LOOPS.values())


def _cyclic_program() -> None:
    # depends_on a component means on its children, and the dependent is one of them.
    component = pulumi.ComponentResource("test:index:Group", "group")
    aws.ec2.Vpc("a", cidr_block="10.0.0.0/16", opts=pulumi.ResourceOptions(parent=component))
    aws.ec2.Vpc("b", cidr_block="10.0.0.0/16", opts=pulumi.ResourceOptions(parent=component, depends_on=[component]))


def test_a_dependency_cycle_fails_as_without_the_speed_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    message = "circular dependency involving a resource of type aws:ec2/vpc:Vpc named b"
    with pytest.raises(RuntimeError, match=message):
        record(_cyclic_program, preview=True)
    _plain_path(monkeypatch)
    with pytest.raises(RuntimeError, match=message):
        record(_cyclic_program, preview=True)


def _depends_on_program() -> None:
    # depends_on in each form the SDK takes: resources, a component (its children), an Output of
    # resources, a list holding an Output; and a resource named as its own dependency's child.
    group = pulumi.ComponentResource("test:index:Group", "group")
    first = aws.ec2.Vpc("first", cidr_block="10.0.0.0/16", opts=pulumi.ResourceOptions(parent=group))
    inner = pulumi.ComponentResource("test:index:Inner", "inner", opts=pulumi.ResourceOptions(parent=group))
    second = aws.ec2.Vpc("second", cidr_block="10.1.0.0/16", opts=pulumi.ResourceOptions(parent=inner))
    forms: list[Any] = [[first], [group], [first, second, first], pulumi.Output.from_input([second]),
                        [pulumi.Output.from_input(first)], first, []]
    for index, depends_on in enumerate(forms):
        aws.ec2.Vpc(f"dependent-{index}", cidr_block="10.2.0.0/16", opts=pulumi.ResourceOptions(depends_on=depends_on))


def test_every_form_of_depends_on_records_as_without_the_speed_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = record(_depends_on_program, preview=True)
    group = {"urn:pulumi:test::cortex::test:index:Group$aws:ec2/vpc:Vpc::first",
             "urn:pulumi:test::cortex::test:index:Group$test:index:Inner$aws:ec2/vpc:Vpc::second"}
    assert set(fast.find("aws:ec2/vpc:Vpc", "dependent-1").dependencies) == group
    _plain_path(monkeypatch)
    assert dumps(to_plan(record(_depends_on_program, preview=True))) == dumps(to_plan(fast))


_SDK_CONTAINS_UNKNOWNS = rpc.contains_unknowns
_SDK_DECLARE_DEPENDENCY = pulumi_cycle_breaker.declare_dependency
_SDK_CREATE_URN = pulumi_runtime_resource.create_urn


class _Mapping(dict):  # type: ignore[type-arg]
    """A dict whose [] answers differently from its stored values (as the SDK reads dicts)."""

    def __getitem__(self, key: Any) -> Any:
        return pulumi_output.UNKNOWN if key == "lie" else super().__getitem__(key)


_JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3), st.just(pulumi_output.UNKNOWN)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b", "lie"]), inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "lie"]), inner, max_size=3).map(_Mapping),
        st.lists(inner, max_size=3).map(tuple),  # not walked, by either
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_JSONISH, st.booleans())
def test_the_unknowns_check_shim_answers_as_the_sdk(value: Any, shared: bool) -> None:
    if shared and isinstance(value, (dict, list)):
        value = [value, {"again": value}, value]  # one container reached several times
    assert engine._contains_unknowns(value) is _SDK_CONTAINS_UNKNOWNS(value)
    if isinstance(value, list):  # a container that holds itself
        value.append(value)
        assert engine._contains_unknowns(value) is _SDK_CONTAINS_UNKNOWNS(value)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=10).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=30))
))
def test_the_declared_dependencies_shim_answers_as_the_sdk(case: tuple[int, list[tuple[int, int]]]) -> None:
    # The same declarations, one by one, into two graphs: the same answers and the same edges.
    n, declarations = case
    sdk_nodes, shim_nodes = [_Node(i) for i in range(n)], [_Node(i) for i in range(n)]

    def edges(nodes: list[_Node]) -> list[set[int]]:
        return [{d.index for d in getattr(node, pulumi_cycle_breaker._DEPENDENCIES_PROPERTY, set())} for node in nodes]

    for a, b in declarations:
        sdk = _SDK_DECLARE_DEPENDENCY(sdk_nodes[a], sdk_nodes[b])  # type: ignore[arg-type]
        assert engine._declare_dependency(shim_nodes[a], shim_nodes[b]) is sdk  # type: ignore[arg-type]
        assert edges(shim_nodes) == edges(sdk_nodes)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=6), st.text(max_size=6), st.one_of(st.none(), st.text(max_size=12), st.just("urn:a::b::c::d")),
       st.one_of(st.none(), st.text(max_size=4)), st.one_of(st.none(), st.text(max_size=4)))
def test_the_urn_shim_answers_as_the_sdk(name: str, type_: str, parent: str | None, project: str | None,
                                         stack: str | None) -> None:
    async def read(output: pulumi.Output[str]) -> tuple[Any, ...]:
        return (await output.future(), await output.is_known(), await output.is_secret(), await output.resources())

    async def both() -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return (await read(engine._create_urn(name, type_, parent, project, stack)),
                await read(_SDK_CREATE_URN(name, type_, parent, project, stack)))

    def check() -> None:
        shim, sdk = pulumi.runtime.sync_await._sync_await(both())
        assert shim == sdk

    record(check, project="proj", stack="stk")


def test_the_urn_shim_leaves_outputs_and_resources_to_the_sdk() -> None:
    seen: list[tuple[Any, ...]] = []

    def program() -> None:
        vpc = aws.ec2.Vpc("a", cidr_block="10.0.0.0/16")
        for args in ((pulumi.Output.from_input("n"), "t:x:Y", None), ("n", "t:x:Y", vpc)):
            urn = engine._create_urn(*args)
            urn.apply(lambda value, args=args: seen.append((value, args[2] is vpc)))

    record(program, preview=False)
    assert sorted(seen) == [("urn:pulumi:test::cortex::aws:ec2/vpc:Vpc$t:x:Y::n", True),
                            ("urn:pulumi:test::cortex::t:x:Y::n", False)]


def test_the_type_shim_answers_as_the_sdk_for_each_type_object() -> None:
    import pulumi._types as pulumi_types
    from pulumi_kubernetes.core.v1 import _inputs as core_inputs

    hints = [hint for cls in (core_inputs.ContainerArgs, core_inputs.PodSpecArgs)
             for hint in typing.get_type_hints(cls.__init__).values()]
    assert len(hints) > 50
    for hint in hints + [str, typing.Optional[pulumi.Input[str]]]:  # noqa: UP045 - the SDK's own spelling
        assert engine._unwrap_type(hint) == pulumi_types.unwrap_type(hint)
        assert engine._unwrap_type(hint) == pulumi_types.unwrap_type(hint)  # kept
    unhashable = typing.Annotated[int, []]  # hashing it fails
    assert engine._unwrap_type(unhashable) == pulumi_types.unwrap_type(unhashable)
    # Equal type objects are each answered with themselves, as the SDK answers them.
    first, second = typing.ForwardRef("Spec"), typing.ForwardRef("Spec")
    assert first == second and first is not second
    assert engine._unwrap_type(first) is first and engine._unwrap_type(second) is second


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


def test_the_unknowns_check_shim_answers_values_nested_deeper_than_the_sdk_recurses() -> None:
    deep: list[Any] = [pulumi_output.UNKNOWN]
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        _SDK_CONTAINS_UNKNOWNS(deep)
    assert engine._contains_unknowns(deep) is True
