"""Loading from files and data: file-level problems, several files, telling spec kinds apart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from cortex_iac.errors import SpecError
from cortex_iac.specs import detect_spec_kind, load_api_files, load_apis, load_cluster
from tests.specs.helpers import api


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def problems_of(call: object, *args: object, **kwargs: object) -> list[str]:
    with pytest.raises(SpecError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value.problems


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert problems_of(load_apis, path) == [f"{path}: file not found"]
    assert problems_of(load_cluster, str(path)) == [f"{path}: file not found"]


def test_directory(tmp_path: Path) -> None:
    assert problems_of(load_apis, tmp_path) == [f"{tmp_path}: is a directory, not a spec file"]


@pytest.mark.parametrize("text", ["", "\n# only a comment\n", "~\n", "null"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "cortex.yaml", text)
    assert problems_of(load_apis, path) == [
        f"{path}: (top level): the file is empty (must be a list of APIs, each starting with '- name: ...')"
    ]
    assert problems_of(load_cluster, path) == [
        f"{path}: (top level): the file is empty (must be a mapping of cluster settings such as region: us-east-1)"
    ]


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "cortex.yaml", "- name: a\n  kind: [RealtimeAPI\n")
    assert problems_of(load_apis, path) == [
        f"{path}: line 3, column 1: invalid YAML (did not find expected ',' or ']')"
    ]


def test_tab_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, "cortex.yaml", "- name: a\n\tkind: RealtimeAPI\n")
    assert problems_of(load_apis, path) == [
        f"{path}: line 2, column 1: invalid YAML (found a tab character that violates indentation)"
    ]


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "cortex.yaml", "- name: a\n  kind: RealtimeAPI\n  name: b\n")
    assert problems_of(load_apis, path) == [
        f"{path}: line 3, column 3: key 'name' given twice is not allowed (one value per key)"
    ]


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    text = (
        "- &base\n  name: a\n  kind: RealtimeAPI\n  pod: {containers: [{name: api, image: x}]}\n"
        "- <<: *base\n  name: b\n"
    )
    assert [spec.name for spec in load_apis(write(tmp_path, "cortex.yaml", text))] == ["a", "b"]


def test_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "cortex.yaml", b"- name: \xff\n")
    assert problems_of(load_apis, path) == [f"{path}: byte 8 is not UTF-8 text (spec files are UTF-8 YAML)"]


def test_bad_yaml_value(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster.yaml", "region: 2021-13-45\n")
    assert problems_of(load_cluster, path) == [f"{path}: (top level): invalid YAML value (month must be in 1..12)"]


def test_wrong_top_level_types(tmp_path: Path) -> None:
    single = write(tmp_path, "single.yaml", "name: a\nkind: RealtimeAPI\n")
    assert problems_of(load_apis, single) == [
        f'{single}: apis: {{"name": "a", "kind": "RealtimeAPI"}} is not allowed '
        "(must be a list of APIs, each starting with '- name: ...'; put '- ' before the first key)"
    ]
    assert problems_of(load_apis, "just text", origin="x") == ["x: file not found"]
    assert problems_of(load_apis, {"a": 1}, origin="Pulumi.dev.yaml: cortex:apis") == [
        "Pulumi.dev.yaml: cortex:apis: apis: {\"a\": 1} is not allowed (must be a list of APIs, each starting with '- name: ...')"
    ]
    assert problems_of(load_cluster, [1, 2], origin="Pulumi.dev.yaml: cortex:cluster") == [
        "Pulumi.dev.yaml: cortex:cluster: (top level): [1, 2] is not allowed (must be a mapping of cluster settings such as region: us-east-1)"
    ]


def test_origin_names_parsed_data() -> None:
    assert problems_of(load_apis, [api(name="Bad")], origin="Pulumi.dev.yaml: cortex:apis") == [
        "Pulumi.dev.yaml: cortex:apis: apis[0].name: 'Bad' is not allowed (must be at most 42 characters of a-z, 0-9 and '-', "
        "starting with a letter and ending with a letter or digit)"
    ]
    assert problems_of(load_apis, [api(name=1)])[0].startswith("<data>: apis[0].name: 1 is not allowed")


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "cortex.yaml", yaml.safe_dump([api(name="A"), api(pod={"port": 0, "containers": [{"name": "c"}]})]))
    lines = problems_of(load_apis, path)
    assert len(lines) == 3 and all(line.startswith(f"{path}: apis[") for line in lines)
    assert str(SpecError(lines)) == "\n".join(lines)


def test_api_files_share_one_namespace(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", yaml.safe_dump([api(name="one"), api(name="two")]))
    second = write(tmp_path, "b.yaml", yaml.safe_dump([api(name="two"), api("TrafficSplitter", apis=[{"name": "one", "weight": 100}])]))
    assert problems_of(load_api_files, [first, second]) == [
        f"{second}: apis[0].name: 'two' is not allowed (API names must be unique; {first}: apis[1] has it)"
    ]
    fine = write(tmp_path, "c.yaml", yaml.safe_dump([api(name="three")]))
    assert [spec.name for spec in load_api_files([first, fine])] == ["one", "two", "three"]


def test_api_files_report_every_file(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yaml", "- [")
    bad = write(tmp_path, "bad.yaml", yaml.safe_dump([api(kind="Nope")]))
    lines = problems_of(load_api_files, [broken, tmp_path / "gone.yaml", bad])
    assert [line.split(": ")[0] for line in lines] == [str(broken), str(tmp_path / "gone.yaml"), str(bad)]


def test_detect_spec_kind(tmp_path: Path) -> None:
    assert detect_spec_kind(write(tmp_path, "c.yaml", "region: us-east-1\n")) == "cluster"
    assert detect_spec_kind(write(tmp_path, "a.yaml", "- name: a\n")) == "apis"
    assert detect_spec_kind(write(tmp_path, "s.yaml", "name: a\nkind: RealtimeAPI\n")) == "apis"
    other = write(tmp_path, "o.yaml", "hello: world\n")
    assert problems_of(detect_spec_kind, other) == [
        f"{other}: (top level): {{\"hello\": \"world\"}} is not allowed (must be a mapping of cluster settings such as "
        "region: us-east-1, or a list of APIs, each starting with '- name: ...')"
    ]
    assert problems_of(detect_spec_kind, tmp_path / "none.yaml") == [f"{tmp_path / 'none.yaml'}: file not found"]


def test_deeply_nested_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "deep.yaml", "[" * 5000 + "]" * 5000)
    assert problems_of(load_apis, path) == [f"{path}: (top level): invalid YAML (nested too deeply)"]
    nested = write(tmp_path, "nested.yaml", "- " + "[" * 200 + "]" * 200)
    assert problems_of(load_apis, nested) == [f"{nested}: apis[0]: {'[' * 59}… is not allowed (must be a mapping with name, kind, ...)"]


def test_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    # 9**10 values once expanded (billion laughs): refused in one line, without expanding it.
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = write(tmp_path, "bomb.yaml", "\n".join(lines) + "\nregion: us-east-1\nnode_groups: *a9\n")
    assert problems_of(load_cluster, path) == [
        f"{path}: (top level): YAML aliases expand to more than 1000000 values (an alias bomb, or a recursive "
        "alias); write the values out or use fewer aliases"
    ]


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    text = "common: &c {instance_type: m5.large}\n"
    path = write(tmp_path, "ok.yaml", "region: us-east-1\nnode_groups:\n  - {name: a, instance_type: m5.large}\n")
    assert load_cluster(path).node_groups[0].name == "a"
    path = write(tmp_path, "alias.yaml", "- &api {name: a, kind: RealtimeAPI, pod: {containers: [{name: c, image: x}]}}\n")
    assert load_apis(path)[0].name == "a"
    del text


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "loop.yaml", "region: us-east-1\nnode_groups: &n [*n]\n")
    assert "recursive alias" in problems_of(load_cluster, path)[0]


def test_large_and_special_files_are_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (4 * 1024 * 1024 + 1))
    assert problems_of(load_apis, big) == [f"{big}: has {4 * 1024 * 1024 + 1} bytes; a spec file may have at most {4 * 1024 * 1024}"]
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert problems_of(load_apis, fifo) == [f"{fifo}: is not a regular file (a device, FIFO or socket is never a spec file)"]
    assert problems_of(load_apis, Path("/dev/zero")) == [
        "/dev/zero: is not a regular file (a device, FIFO or socket is never a spec file)"
    ]
