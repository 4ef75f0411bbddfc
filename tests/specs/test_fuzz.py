"""Thousands of malformed specs, made by breaking valid ones, all end in one `SpecError` whose lines
name the file and the field path of the break; never another exception."""

from __future__ import annotations

import copy
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cortex_iac.errors import SpecError
from cortex_iac.specs import api as api_models
from cortex_iac.specs import cluster as cluster_models
from cortex_iac.specs import load_apis, load_cluster
from cortex_iac.specs import pod as pod_models
from cortex_iac.specs.base import SpecModel
from tests.specs.helpers import API_FILES, REFERENCE, api, container

Loc = tuple[str | int, ...]

# Valid specs to break: the Cortex reference files when present, and specs of every kind built here.
BUILT_IN_APIS = [
    api(pod={"containers": [container(env={"MODE": "fast"}, readiness_probe={"http_get": {"port": 8080}})]}),
    api("AsyncAPI", autoscaling={"window": "30s"}),
    api("BatchAPI"),
    api("TaskAPI"),
    [api(name="a"), api(name="b"), api("TrafficSplitter", apis=[{"name": "a", "weight": 100}, {"name": "b", "weight": 0, "shadow": True}])],
]
BUILT_IN_CLUSTER = {
    "region": "us-west-2",
    "availability_zones": ["us-west-2a", "us-west-2b"],
    "node_groups": [
        {"name": "cpu", "instance_type": "c5.xlarge", "spot": True, "spot_config": {"instance_distribution": ["c5.2xlarge"]}},
        {"name": "gpu", "instance_type": "g5.xlarge", "instance_volume_iops": 3000, "instance_volume_throughput": 125},
    ],
    "tags": {"team": "ml"},
}
VALID: list[tuple[str, Any]] = [("apis", item if isinstance(item, list) else [item]) for item in BUILT_IN_APIS]
VALID.append(("cluster", BUILT_IN_CLUSTER))
VALID += [("apis", yaml.safe_load(path.read_text())) for path in API_FILES]
if (REFERENCE / "cluster.yaml").is_file():
    VALID.append(("cluster", yaml.safe_load((REFERENCE / "cluster.yaml").read_text())))

FREE_FORM = {"env", "tags", "config"}  # mappings whose keys are the user's, not field names
ALL_FIELDS = {
    name
    for module in (api_models, cluster_models, pod_models)
    for model in vars(module).values()
    if isinstance(model, type) and issubclass(model, SpecModel)
    for name in model.model_fields
}
ORIGIN = "fuzz/spec.yaml"
# what follows "<file>: " in every line: a field path (`apis[1].pod.port`, `tags['a b']`), a YAML
# position, or "(top level)"; then ": " and the problem
LOCATION = re.compile(r"^(\(top level\)|line \d+, column \d+|([^\s:.\[]+|\[.+?\])(\[.+?\]|\.[^\s:.\[]+)*): \S")


def load(kind: str, data: Any) -> Any:
    return (load_apis if kind == "apis" else load_cluster)(data, origin=ORIGIN)


def path_text(kind: str, loc: Loc) -> str:
    text = "apis" if kind == "apis" else ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def nodes(data: Any, loc: Loc = (), free: bool = False) -> Iterator[tuple[Loc, Any, bool]]:
    """Every node below the root, with its location and whether it sits in a free-form mapping."""
    if loc:
        yield loc, data, free
    if isinstance(data, dict):
        for key, value in data.items():
            yield from nodes(value, (*loc, key), key in FREE_FORM)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from nodes(value, (*loc, index), False)


def get(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def required(kind: str, data: Any) -> list[Loc]:
    """Locations of keys the spec cannot do without."""
    if kind == "cluster":
        groups = [(("node_groups", i, key)) for i in range(len(data.get("node_groups") or [])) for key in ("name", "instance_type")]
        return [("region",), *groups]
    locs: list[Loc] = []
    for i, item in enumerate(data):
        locs += [(i, "name"), (i, "kind")]
        if item["kind"] == "TrafficSplitter":
            locs += [(i, "apis"), *[(i, "apis", j, key) for j in range(len(item["apis"])) for key in ("name", "weight")]]
            continue
        locs += [(i, "pod"), (i, "pod", "containers")]
        for j, _box in enumerate(item["pod"]["containers"]):
            locs += [(i, "pod", "containers", j, "name"), (i, "pod", "containers", j, "image")]
            if item["kind"] in ("BatchAPI", "TaskAPI"):
                locs.append((i, "pod", "containers", j, "command"))
    return locs


def misspell(key: str, how: int, at: int) -> str:
    at %= len(key)
    return [
        key[:at] + key[at + 1 :],  # drop a letter
        key[:at] + key[at] + key[at:],  # double a letter
        key[:at] + key[at + 1 : at + 2] + key[at] + key[at + 2 :],  # swap two letters
        key.upper(),
        key.replace("_", "-"),
        key + "s",
        "_" + key,
    ][how]


@st.composite
def bad_quantity(draw: st.DrawFn, field: str) -> str:
    number = draw(st.sampled_from(["1", "0.5", "12", ".5", "2.", "128", "1e3"]) | st.integers(0, 10**6).map(str))
    wrong_suffix = number + draw(st.sampled_from(["Q", "KB", "kb", "gi", "mi", "MB", "GiB", " ", "%", "e", "E+", "e1.5", "..", "Kii", "Mib"]))
    no_number = draw(st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=6))
    too_small = {"cpu": f"{draw(st.integers(0, 19))}m", "mem": f"{draw(st.integers(0, 19))}Mi", "shm": "0"}[field]
    return draw(st.sampled_from([wrong_suffix, no_number, too_small]))


@st.composite
def bad_duration(draw: st.DrawFn) -> str:
    number = str(draw(st.integers(0, 10**5)))
    return draw(
        st.sampled_from(
            [
                number + draw(st.sampled_from(["d", "ms", "S", "M", "H", "sec", "min", "w", " s", "s5"])),
                "-" + number + "s",
                draw(st.text(alphabet="hmsxyz. -", max_size=5)).replace("0", ""),
            ]
        )
    )


def out_of_range(kind: str, item_kind: str) -> list[tuple[Loc, st.SearchStrategy[Any]]]:
    """(location in an API or the cluster, strategy of values that break it) pairs for this kind."""
    below = st.integers(max_value=0)
    if kind == "cluster":
        return [
            (("node_groups", 0, "priority"), below | st.integers(min_value=101)),
            (("node_groups", 0, "instance_volume_size"), st.integers(max_value=19) | st.integers(min_value=16385)),
            (("node_groups", 0, "min_instances"), st.integers(max_value=-1)),
            (("node_groups", 0, "max_instances"), st.integers(max_value=-1)),
            (("node_groups", 0, "instance_volume_throughput"), st.integers(max_value=124) | st.integers(min_value=1001)),
            (("node_groups", 0, "spot_config", "instance_pools"), below | st.integers(min_value=21)),
            (("node_groups", 0, "spot_config", "on_demand_percentage_above_base_capacity"), st.integers(max_value=-1) | st.integers(min_value=101)),
            (("vpc_cidr",), st.sampled_from(["10.0.0.0/8", "10.0.0.0/25", "10.0.0.300/16", "fd00::/16", "10.0.0.1/16"])),
            (("api_load_balancer_cidr_white_list", 0), st.sampled_from(["0.0.0.0", "1.2.3.4/33", "x/8", ""])),
        ]
    if item_kind == "TrafficSplitter":
        return [(("apis", 0, "weight"), st.integers(max_value=-1) | st.integers(min_value=101))]
    box: Loc = ("pod", "containers", 0)
    ranges: list[tuple[Loc, st.SearchStrategy[Any]]] = [
        (("pod", "port"), st.sampled_from([0, -1, 65536, 8888, 15000, 15001]) | below | st.integers(min_value=65536)),
        ((*box, "compute", "gpu"), st.integers(max_value=-1)),
        ((*box, "compute", "inf"), st.integers(max_value=-1)),
        ((*box, "liveness_probe", "period_seconds"), below),
        ((*box, "liveness_probe", "initial_delay_seconds"), st.integers(max_value=-1)),
        ((*box, "compute", "cpu"), bad_quantity("cpu")),
        ((*box, "compute", "mem"), bad_quantity("mem")),
        ((*box, "compute", "shm"), bad_quantity("shm")),
        (("name",), st.sampled_from(["Upper", "9lives", "under_score", "x" * 43, "-dash", "dash-", ""])),
    ]
    if item_kind in ("RealtimeAPI", "AsyncAPI"):
        limit = 30000 if item_kind == "RealtimeAPI" else 100
        ranges += [
            (("pod", "max_concurrency"), below | st.integers(min_value=limit + 1)),
            (("autoscaling", "max_replicas"), below),
            (("autoscaling", "min_replicas"), st.integers(max_value=-1)),
            (("autoscaling", "max_upscale_factor"), st.floats(max_value=1.0, allow_nan=False, allow_infinity=False)),
            (("autoscaling", "max_downscale_factor"), st.floats(min_value=1.0, allow_infinity=False) | st.floats(max_value=-1e-9, allow_infinity=False)),
            (("autoscaling", "downscale_tolerance"), st.floats(min_value=1.0, allow_infinity=False) | st.floats(max_value=-1e-9, allow_infinity=False)),
            (("autoscaling", "upscale_tolerance"), st.floats(max_value=-1e-9, allow_infinity=False)),
            (("autoscaling", "target_in_flight"), st.floats(max_value=0, allow_infinity=False)),
            (("autoscaling", "window"), st.integers(0, 10**5).filter(lambda s: s % 10 or s == 0).map(lambda s: f"{s}s") | bad_duration()),
            (("autoscaling", "downscale_stabilization_period"), bad_duration()),
            (("autoscaling", "upscale_stabilization_period"), bad_duration()),
            (("update_strategy", "max_surge"), st.integers(max_value=-1) | st.sampled_from(["101%", "-1%", "1.5", "abc", "%"])),
        ]
    if item_kind == "RealtimeAPI":
        ranges += [
            (("pod", "max_queue_length"), below | st.integers(min_value=30001)),
            # above max_concurrency + max_queue_length, which are at most 30000 each
            (("autoscaling", "target_in_flight"), st.floats(min_value=60001, max_value=1e12)),
        ]
    else:
        ranges.append((("pod", "max_queue_length"), st.integers()))  # not supported by the kind, or out of range
    if item_kind in ("BatchAPI", "TaskAPI"):
        ranges.append((("pod", "max_concurrency"), st.integers()))  # not supported by the kind
    return ranges


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, Any, str]:
    """A spec broken in one way, and the field path where the break must be reported."""
    kind, valid = draw(st.sampled_from(VALID))
    data = copy.deepcopy(valid)
    how = draw(st.sampled_from(["delete", "misspell", "wrong type", "out of range", "duplicate"]))
    if how == "delete":
        loc = draw(st.sampled_from(required(kind, data)))
        parent = get(data, loc[:-1])
        assume(loc[-1] in parent)
        del parent[loc[-1]]
        return kind, data, path_text(kind, loc)
    if how == "misspell":
        mappings = [(loc, node) for loc, node, free in nodes(data) if isinstance(node, dict) and node and not free]
        if kind == "cluster":
            mappings.append(((), data))
        loc, node = draw(st.sampled_from(mappings))
        key = draw(st.sampled_from(sorted(node)))
        new = misspell(key, draw(st.integers(0, 6)), draw(st.integers(0, 50)))
        assume(new not in ALL_FIELDS)
        node[new] = node.pop(key)
        if kind == "apis" and len(loc) == 1 and key == "kind":  # without a kind, nothing else is checked
            return kind, data, path_text(kind, (*loc, "kind"))
        return kind, data, path_text(kind, (*loc, new))
    if how == "wrong type":
        loc, node, _ = draw(st.sampled_from([(loc, node, free) for loc, node, free in nodes(data) if node is not None]))
        if isinstance(node, dict):
            replacement = draw(st.sampled_from([[1, 2], "text", 42, True, 1.5]))
        elif isinstance(node, list):
            replacement = draw(st.sampled_from([{"junk": 1}, "text", 42]))
        else:
            replacement = draw(st.sampled_from([{"junk": [1]}, [["x"]]]))
        get(data, loc[:-1])[loc[-1]] = replacement
        return kind, data, path_text(kind, loc)
    if how == "out of range":
        index = draw(st.integers(0, len(data) - 1)) if kind == "apis" else None
        item = data[index] if index is not None else data
        loc, values = draw(st.sampled_from(out_of_range(kind, item.get("kind", ""))))
        target = item
        for part, after in zip(loc[:-1], loc[1:], strict=False):
            if isinstance(part, int):
                assume(isinstance(target, list) and part < len(target))
            elif target.get(part) is None:
                target[part] = [None] * (after + 1) if isinstance(after, int) else {}
            target = target[part]
        target[loc[-1]] = draw(values)
        full = (index, *loc) if index is not None else loc
        return kind, data, path_text(kind, full)
    # duplicate a list item that carries a name
    if kind == "apis":
        data.append(copy.deepcopy(draw(st.sampled_from(data))))
        return kind, data, path_text(kind, (len(data) - 1, "name"))
    groups = data.get("node_groups") or []
    assume(groups)
    groups.append(copy.deepcopy(draw(st.sampled_from(groups))))
    return kind, data, path_text(kind, ("node_groups", len(groups) - 1, "name"))


@settings(max_examples=2400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(malformed())
def test_malformed_specs_raise_one_spec_error_at_the_field(case: tuple[str, Any, str]) -> None:
    kind, data, expected = case
    try:
        load(kind, data)
    except SpecError as error:
        lines = error.problems
    else:
        raise AssertionError(f"loaded without error; the break at {expected} went unnoticed")
    assert lines, "a SpecError without problems"
    for line in lines:
        assert line.startswith(f"{ORIGIN}: ") and "\n" not in line
        assert LOCATION.match(line[len(ORIGIN) + 2 :]), line
    assert any(line.startswith(f"{ORIGIN}: {expected}: ") for line in lines), (expected, lines)


YAMLISH = st.text(alphabet=st.sampled_from(list("abcxyz019 -_:[]{}#&*!|>'\"%@`,?\n\t") + ["\x00", "é"]), max_size=80)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(text=YAMLISH | st.text(max_size=80), kind=st.sampled_from(["apis", "cluster"]))
def test_junk_yaml_text_raises_one_spec_error(text: str, kind: str) -> None:
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = None
    except ValueError:
        parsed = None
    assume(not (kind == "apis" and parsed == []))  # an empty list of APIs is valid
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "junk.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            (load_apis if kind == "apis" else load_cluster)(path)
        except SpecError as error:
            lines = error.problems
        else:
            raise AssertionError(f"junk loaded: {text!r}")
        for line in lines:
            assert line.startswith(f"{path}: ") and "\n" not in line
            assert LOCATION.match(line[len(str(path)) + 2 :]), line
