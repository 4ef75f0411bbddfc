"""Handler paths are relative to the API file they are declared in; reading the handler files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cortex_iac.specs import (
    load_apis,
    read_handler_sources,
)
from tests.specs.helpers import api, container


def _handler_api(path: str, name: str = "api") -> dict:
    return api(name=name, pod={"containers": [
        {"name": "model", "handler": {"path": path}},
        container(name="helper"),
    ]})


def _write_api(directory: Path, path: str, name: str = "api") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "cortex.yaml"
    file.write_text(yaml.safe_dump([_handler_api(path, name)]))
    return file


def test_path_is_relative_to_the_api_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_api(tmp_path / "apis", "src/handler.py")
    (tmp_path / "apis" / "src").mkdir()
    (tmp_path / "apis" / "src" / "handler.py").write_text("class Handler: ...\n")
    monkeypatch.chdir(tmp_path)  # a relative API path still resolves to an absolute handler file
    (spec,) = load_apis(Path("apis/cortex.yaml"))
    handler = spec.pod.containers[0].handler  # type: ignore[union-attr]
    assert handler is not None and handler.path == "src/handler.py"  # the spec keeps what was written
    assert handler.file == tmp_path / "apis" / "src" / "handler.py"
    assert read_handler_sources(spec) == {"model": "class Handler: ...\n"}






def test_apis_without_handlers_have_no_sources() -> None:
    (spec,) = load_apis([api()])
    assert read_handler_sources(spec) == {}
    (splitter,) = load_apis([{"name": "s", "kind": "TrafficSplitter", "apis": [{"name": "x", "weight": 100}]}])
    assert read_handler_sources(splitter) == {}



