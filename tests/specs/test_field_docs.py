"""Every spec field carries a description, and the README's field tables are the generated ones."""

from __future__ import annotations

import importlib.util
import sys
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from cortex_iac.specs import ClusterSpec
from cortex_iac.specs.api import API_KINDS, API_SPEC_MODELS

REPO = Path(__file__).resolve().parents[2]
ROOT_MODELS: list[type[BaseModel]] = [ClusterSpec, *API_SPEC_MODELS.values()]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_spec_docs", REPO / "scripts" / "gen_spec_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_spec_docs"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gen = _load_script()


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds, however nested (Optional, Annotated, list, dict, union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _reachable_from(*roots: type[BaseModel]) -> list[type[BaseModel]]:
    """``roots`` and every model their fields hold, nested or not, in the order found."""
    seen: list[type[BaseModel]] = []
    todo = list(roots)
    while todo:
        model = todo.pop(0)
        if model not in seen:
            seen.append(model)
            for info in model.model_fields.values():
                todo += _models_in(info.annotation)
    return seen


def _reachable() -> list[type[BaseModel]]:
    return _reachable_from(*ROOT_MODELS)


def test_the_walk_reaches_every_nested_model() -> None:
    names = {model.__name__ for model in _reachable()}
    assert names >= {
        "ClusterSpec", "NodeGroupSpec", "SpotConfig", "SubnetSpec",
        "RealtimeApiSpec", "AsyncApiSpec", "BatchApiSpec", "TaskApiSpec", "TrafficSplitterSpec", "TrafficSplitTarget",
        "AutoscalingSpec", "UpdateStrategySpec", "NetworkingSpec", "IamSpec", "PodSpec", "ContainerSpec",
        "ComputeSpec", "HandlerSpec", "ProbeSpec", "PreStopSpec", "HttpGetSpec", "TcpSocketSpec", "ExecSpec",
    }


@pytest.mark.parametrize("model", _reachable(), ids=lambda model: model.__name__)
def test_every_field_has_a_description(model: type[BaseModel]) -> None:
    undocumented = [name for name, info in model.model_fields.items() if not (info.description or "").strip()]
    assert not undocumented, f"{model.__name__}: put a docstring under {', '.join(undocumented)}"


@pytest.mark.parametrize("model", ROOT_MODELS, ids=lambda model: model.__name__)
def test_every_json_schema_property_has_a_description(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    objects = {model.__name__: schema, **schema.get("$defs", {})}
    missing = [
        f"{name}.{key}"
        for name, sub in objects.items()
        for key, prop in sub.get("properties", {}).items()
        if not str(prop.get("description", "")).strip()
    ]
    assert not missing
    # Every nested model is in $defs, so the check above covered them all.
    assert {m.__name__ for m in _reachable_from(model)} <= set(objects)


def test_the_readme_tables_are_the_generated_ones() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert gen.current_block(readme) == gen.render(), "run: python scripts/gen_spec_docs.py --write"


def test_the_readme_section_says_how_to_regenerate() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Spec fields\n"):readme.index(gen.START)]
    assert "python scripts/gen_spec_docs.py --write" in section
    assert readme.index("## The `cortex` command") < readme.index("## Spec fields") < readme.index(gen.START)


def test_the_output_is_deterministic() -> None:
    assert gen.render() == gen.render()


def test_write_restores_a_drifted_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    original = (REPO / "README.md").read_text(encoding="utf-8")
    readme.write_text(original.replace("| `region` |", "| `regions` |"), encoding="utf-8")
    assert gen.main(["--check", "--readme", str(readme)], out=lambda text: None) == 1
    assert gen.main(["--write", "--readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == original
    assert gen.main(["--check", "--readme", str(readme)]) == 0


def test_every_field_path_has_a_row() -> None:
    cluster_paths = [row.path for row in gen.cluster_rows()]
    assert "node_groups[].spot_config.instance_pools" in cluster_paths
    assert "subnets[].subnet_id" in cluster_paths
    api_paths = [row.path for row in gen.api_rows()]
    assert "pod.containers[].compute.cpu" in api_paths
    assert "apis[].shadow" in api_paths
    assert len(api_paths) == len(set(api_paths))


# One value per field a kind may refuse; each is given alone on a minimal valid API of every kind.
_POD_SAMPLES: dict[str, dict[str, Any]] = {
    "pod.port": {"port": 9000},
    "pod.max_concurrency": {"max_concurrency": 2},
    "pod.max_queue_length": {"max_queue_length": 50},
    "pod.request_timeout": {"request_timeout": "30s"},
}
_CONTAINER_SAMPLES: dict[str, dict[str, Any]] = {
    "pod.containers[].readiness_probe": {"readiness_probe": {"tcp_socket": {"port": 8080}}},
    "pod.containers[].readiness_probe.exec": {"readiness_probe": {"exec": {"command": ["true"]}}},
    "pod.containers[].liveness_probe.exec": {"liveness_probe": {"exec": {"command": ["true"]}}},
    "pod.containers[].pre_stop": {"pre_stop": {"exec": {"command": ["sleep", "5"]}}},
    "pod.containers[].pre_stop.http_get": {"pre_stop": {"http_get": {"port": 8080}}},
    "pod.containers[].compute.cpu": {"compute": {"cpu": "1"}},
}


def _api(kind: str, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    base = {"name": "api", "image": "quay.io/example/model:1", "command": ["run"]}
    return {"name": "x", "kind": kind, "pod": {**pod, "containers": [{**base, **container}]}}


@pytest.mark.parametrize("path", [*_POD_SAMPLES, *_CONTAINER_SAMPLES])
@pytest.mark.parametrize("kind", [kind for kind in API_KINDS if kind != "TrafficSplitter"])
def test_the_kinds_column_matches_what_the_models_accept(kind: str, path: str) -> None:
    data = _api(kind, _POD_SAMPLES.get(path, {}), _CONTAINER_SAMPLES.get(path, {}))
    try:
        API_SPEC_MODELS[kind].model_validate(data)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (kind in gen.kinds_taking(path)), f"{kind} {'accepts' if accepted else 'refuses'} {path}"


def test_fields_of_one_kind_only() -> None:
    assert gen.kinds_taking("apis[].weight") == ["TrafficSplitter"]
    assert gen.kinds_taking("autoscaling.window") == ["RealtimeAPI", "AsyncAPI"]
    assert gen.kinds_taking("name") == list(API_KINDS)
    assert gen.kinds_taking("pod") == ["RealtimeAPI", "AsyncAPI", "BatchAPI", "TaskAPI"]
