"""Handler paths are relative to the API file they are declared in; reading the handler files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cortex_iac.errors import SpecError
from cortex_iac.specs import (
    RealtimeApiSpec,
    load_api_files,
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


def test_each_file_of_a_set_has_its_own_directory(tmp_path: Path) -> None:
    first = _write_api(tmp_path / "a", "h.py", name="first")
    second = _write_api(tmp_path / "b", "h.py", name="second")
    specs = load_api_files([first, second])
    assert [s.pod.containers[0].handler.file for s in specs] == [  # type: ignore[union-attr]
        tmp_path / "a" / "h.py", tmp_path / "b" / "h.py"]


def test_parsed_data_takes_the_given_base_dir(tmp_path: Path) -> None:
    (spec,) = load_apis([_handler_api("h.py")], origin="stack", base_dir=tmp_path)
    assert spec.pod.containers[0].handler.file == tmp_path / "h.py"  # type: ignore[union-attr]
    (spec,) = load_apis([_handler_api("h.py")], origin="stack")
    assert spec.pod.containers[0].handler.file == Path("h.py")  # type: ignore[union-attr]
    absolute = tmp_path / "elsewhere" / "h.py"
    (spec,) = load_apis([_handler_api(str(absolute))], origin="stack", base_dir=tmp_path / "x")
    assert spec.pod.containers[0].handler.file == absolute  # type: ignore[union-attr]


def test_apis_without_handlers_have_no_sources() -> None:
    (spec,) = load_apis([api()])
    assert read_handler_sources(spec) == {}
    (splitter,) = load_apis([{"name": "s", "kind": "TrafficSplitter", "apis": [{"name": "x", "weight": 100}]}])
    assert read_handler_sources(splitter) == {}


def test_unreadable_handler_files_are_named(tmp_path: Path) -> None:
    def problems(path: str) -> list[str]:
        (spec,) = load_apis([_handler_api(path)], base_dir=tmp_path)
        assert isinstance(spec, RealtimeApiSpec)
        with pytest.raises(SpecError) as caught:
            read_handler_sources(spec)
        return caught.value.problems

    where = "api 'api': pod.containers[0].handler.path"
    assert problems("missing.py") == [(
        f"{where}: 'missing.py' ({tmp_path / 'missing.py'}): file not found "
        "(the path is relative to the directory of the API file)")]
    (tmp_path / "pkg").mkdir()
    assert problems("pkg") == [
        f"{where}: 'pkg' ({tmp_path / 'pkg'}): is a directory (must be the Python file that defines class Handler)"]
    (tmp_path / "latin1.py").write_bytes(b"# caf\xe9\n")
    assert problems("latin1.py") == [
        f"{where}: 'latin1.py' ({tmp_path / 'latin1.py'}): byte 5 is not UTF-8 text (a handler is a UTF-8 Python file)"]

