"""Spec data for the tests: the Cortex reference files and small valid specs to break on purpose."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cortex_iac.errors import SpecError
from cortex_iac.specs import load_apis
from tests.needs import IN_CI

# tests/specs/helpers.py -> parents: specs, tests, the repo, the workspace holding shared/
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "cortex-reference"
# Skipped only off CI: in CI the shared/ folder is laid beside the clone, so these tests must run.
requires_reference = pytest.mark.skipif(
    not (REFERENCE / "apis").is_dir() and not IN_CI,
    reason=f"the Cortex reference specs are not at {REFERENCE} (the workspace's shared/ folder, outside the repo)",
)
API_FILES = sorted((REFERENCE / "apis").glob("*.yaml")) if (REFERENCE / "apis").is_dir() else []


def container(**fields: Any) -> dict[str, Any]:
    """A valid container, with ``fields`` set or replaced."""
    return {"name": "api", "image": "example/api:1", **fields}


def api(kind: str = "RealtimeAPI", **fields: Any) -> dict[str, Any]:
    """A valid API of ``kind`` named ``api``, with top-level ``fields`` set or replaced."""
    if kind == "TrafficSplitter":
        return {"name": "split", "kind": kind, "apis": [{"name": "a", "weight": 100}], **fields}
    pod_container = container(command=["run"]) if kind in ("BatchAPI", "TaskAPI") else container()
    return {"name": "api", "kind": kind, "pod": {"containers": [pod_container]}, **fields}


def with_path(data: Any, path: tuple[str | int, ...], value: Any) -> Any:
    """A deep copy of ``data`` with ``value`` set at ``path``, creating mappings on the way."""
    data = copy.deepcopy(data)
    node = data
    for part in path[:-1]:
        if isinstance(node, dict) and part not in node:
            node[part] = {}
        node = node[part]
    node[path[-1]] = value
    return data


def problems(data: Any, loader: Callable[..., Any] = load_apis, origin: str = "cortex.yaml") -> list[str]:
    """The problem lines of loading ``data``; fails the test when it loads."""
    with pytest.raises(SpecError) as caught:
        loader(data, origin=origin)
    return caught.value.problems
