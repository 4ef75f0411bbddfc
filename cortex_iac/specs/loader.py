"""Loading cluster and API specs from YAML files or from already-parsed data (Pulumi stack config).

Every problem of a source is collected and raised as one `SpecError`, one line per problem, each
naming the source, the field path, the bad value and what is allowed (format: `messages`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from cortex_iac.errors import SpecError
from cortex_iac.specs.api import API_KINDS, API_SPEC_MODELS, ApiSpec
from cortex_iac.specs.cluster import ClusterSpec
from cortex_iac.specs.messages import problem_lines, show, suggest
from cortex_iac.specs.pod import SOURCE_DIR_CONTEXT

Source = str | os.PathLike[str] | Mapping[str, Any] | list[Any]
"""A path to a YAML file, or data already parsed (then name it with ``origin``)."""

# Spec files are small (Cortex's largest examples are a few KiB): anything larger is refused before
# it is parsed, and YAML aliases may not expand to more values than this in all.
MAX_SPEC_BYTES = 4 * 1024 * 1024
MAX_SPEC_VALUES = 1_000_000

_CLUSTER_EXAMPLE = "a mapping of cluster settings such as region: us-east-1"
_APIS_EXAMPLE = "a list of APIs, each starting with '- name: ...'"


def load_cluster(source: Source, *, origin: str | None = None) -> ClusterSpec:
    """Load and validate a cluster spec (Cortex's `cluster.yaml`) from a path or parsed data.

    ``origin`` names the source in messages (default: the path, or ``<data>``). Raises `SpecError`
    listing every problem.
    """
    data, origin = _resolve(source, origin, expected=_CLUSTER_EXAMPLE)
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: (top level): {show(data)} is not allowed (must be {_CLUSTER_EXAMPLE})")
    spec: ClusterSpec = _validate(ClusterSpec, data, origin=origin, root="")
    spec._origin = origin
    return spec


def load_apis(
    source: Source, *, origin: str | None = None, base_dir: str | os.PathLike[str] | None = None
) -> list[ApiSpec]:
    """Load and validate a list of API specs (Cortex's `cortex.yaml`) from a path or parsed data.

    Names must be unique in the list, and a TrafficSplitter may only route to RealtimeAPIs of the
    list (or to APIs deployed elsewhere). Handler paths are relative to ``base_dir``, which defaults
    to the file's directory (for parsed data: none, i.e. the working directory when the handler is
    read). Raises `SpecError` listing every problem.
    """
    data, origin = _resolve(source, origin, expected=_APIS_EXAMPLE)
    if base_dir is None and isinstance(source, (str, os.PathLike)):
        base_dir = Path(source).parent
    specs, lines, entries = _check_api_list(data, origin, base_dir)
    lines += _check_together(entries)
    if lines:
        raise SpecError(lines)
    return specs


def load_api_files(paths: Iterable[str | os.PathLike[str]]) -> list[ApiSpec]:
    """Load the API specs of several files as one set: names must be unique across all of them.

    Raises one `SpecError` listing the problems of every file.
    """
    specs, lines = read_api_files(paths)
    if lines:
        raise SpecError(lines)
    return specs


def read_api_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[ApiSpec], list[str]]:
    """The valid API specs of several files, and the problem lines of the others (names unique
    across all of them): so that checks of the whole deployment can run on the valid ones too."""
    specs: list[ApiSpec] = []
    lines: list[str] = []
    entries: list[_Entry] = []
    for path in paths:
        try:
            data, origin = _resolve(path, None, expected=_APIS_EXAMPLE)
        except SpecError as error:
            lines += error.problems
            continue
        file_specs, file_lines, file_entries = _check_api_list(data, origin, Path(path).parent)
        specs += file_specs
        lines += file_lines
        entries += file_entries
    lines += _check_together(entries)
    return specs, lines


def read_handler_sources(spec: ApiSpec) -> dict[str, str]:
    """The text of each handler file of ``spec``, by container name (containers with an image, and
    APIs without a pod, have none): what the renderer ships to the pod.

    The loader reads (and checks) each file when it validates the spec: ``handler.path`` taken from
    the directory of the API file, a regular UTF-8 file inside it of at most
    :data:`~cortex_iac.specs.pod.MAX_HANDLER_BYTES`. A spec validated from data without a
    directory reads it now, from the working directory, with the same rules; then `SpecError`
    names the API, the container and the path.
    """
    pod = getattr(spec, "pod", None)
    sources: dict[str, str] = {}
    lines: list[str] = []
    for index, container in enumerate(pod.containers if pod is not None else ()):
        if container.handler is None:
            continue
        try:
            sources[container.name] = container.handler.source
        except SpecError as error:
            lines += [f"api {spec.name!r}: pod.containers[{index}].{line}" for line in error.problems]
    if lines:
        raise SpecError(lines)
    return sources


def revalidated(spec: Any, origin: str) -> Any:
    """``spec`` validated again from its own data: for specs built or changed in code
    (``model_copy(update=...)`` skips every rule), so a component runs the rules `cortex validate`
    runs. Raises `SpecError` naming ``origin``."""
    data = spec.model_dump(mode="json")
    result = _validate(type(spec), data, origin=origin, root="")
    return result


def detect_spec_kind(path: str | os.PathLike[str]) -> Literal["cluster", "apis"]:
    """Whether the YAML file at ``path`` is a cluster spec (a mapping with cluster keys) or API
    specs (a list); raises `SpecError` when it is neither, or unreadable."""
    data, origin = _resolve(path, None, expected=f"{_CLUSTER_EXAMPLE}, or {_APIS_EXAMPLE}")
    if isinstance(data, list):
        return "apis"
    if isinstance(data, dict):
        if set(data) & set(ClusterSpec.model_fields):
            return "cluster"
        if "kind" in data or "name" in data:
            return "apis"
    raise SpecError(
        f"{origin}: (top level): {show(data)} is not allowed (must be {_CLUSTER_EXAMPLE}, or {_APIS_EXAMPLE})"
    )


@dataclass
class _Entry:
    """What the cross-API checks need of one list item, valid or not."""

    origin: str
    index: int
    name: Any
    kind: Any
    targets: list[tuple[int, str]] = field(default_factory=list)


def _check_api_list(
    data: Any, origin: str, base_dir: str | os.PathLike[str] | None
) -> tuple[list[ApiSpec], list[str], list[_Entry]]:
    if not isinstance(data, list):
        hint = "; put '- ' before the first key" if isinstance(data, dict) and "kind" in data else ""
        return [], [f"{origin}: apis: {show(data)} is not allowed (must be {_APIS_EXAMPLE}{hint})"], []
    specs: list[ApiSpec] = []
    lines: list[str] = []
    entries: list[_Entry] = []
    for index, item in enumerate(data):
        root = f"apis[{index}]"
        if not isinstance(item, dict):
            lines.append(f"{origin}: {root}: {show(item)} is not allowed (must be a mapping with name, kind, ...)")
            continue
        kind = item.get("kind")
        entries.append(_Entry(origin, index, item.get("name"), kind, _raw_targets(item)))
        model = API_SPEC_MODELS.get(kind) if isinstance(kind, str) else None
        if model is None:
            lines.append(f"{origin}: {root}.kind: {_kind_problem(kind, 'kind' in item)}")
            continue
        context = None if base_dir is None else {SOURCE_DIR_CONTEXT: Path(base_dir).resolve()}
        try:
            spec = _validate(model, item, origin=origin, root=root, context=context)
        except SpecError as error:
            lines += error.problems
            continue
        spec._origin, spec._index = origin, index
        specs.append(spec)
    return specs, lines, entries


def _kind_problem(kind: Any, given: bool) -> str:
    allowed = f"must be one of: {', '.join(API_KINDS)}"
    if not given:
        return f"required key is missing ({allowed})"
    close = suggest(kind, API_KINDS) if isinstance(kind, str) else None
    hint = f"; did you mean {close!r}?" if close else ""
    return f"{show(kind)} is not allowed ({allowed}{hint})"


def _raw_targets(item: dict[str, Any]) -> list[tuple[int, str]]:
    apis = item.get("apis") if item.get("kind") == "TrafficSplitter" else None
    if not isinstance(apis, list):
        return []
    return [
        (j, target["name"])
        for j, target in enumerate(apis)
        if isinstance(target, dict) and isinstance(target.get("name"), str)
    ]


def _check_together(entries: list[_Entry]) -> list[str]:
    lines: list[str] = []
    first: dict[str, _Entry] = {}
    for entry in entries:
        if not isinstance(entry.name, str):
            continue
        if entry.name in first:
            other = first[entry.name]
            where = f"apis[{other.index}]" if other.origin == entry.origin else f"{other.origin}: apis[{other.index}]"
            lines.append(
                f"{entry.origin}: apis[{entry.index}].name: {show(entry.name)} is not allowed "
                f"(API names must be unique; {where} has it)"
            )
        else:
            first[entry.name] = entry
    return lines


def _validate(
    model: type[BaseModel], data: dict[str, Any], *, origin: str, root: str, context: dict[str, Any] | None = None
) -> Any:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise SpecError(problem_lines(error, origin=origin, root=root, data=data, model=model)) from error


def _resolve(source: Source, origin: str | None, *, expected: str) -> tuple[Any, str]:
    if isinstance(source, (str, os.PathLike)):
        name = origin or os.fspath(source)
        return _read_yaml(Path(source), name, expected), name
    return source, origin or "<data>"


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping; its message is already in our format."""


# libyaml's parser (in PyYAML's wheels) is about 10x faster than the pure-Python one: a 1 MB file
# loads in a fraction of a second. The constructor is the safe one either way.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """PyYAML's safe loader, but a key given twice in one mapping is an error, not "last one wins"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable; the base class reports it
                break
            if duplicate:
                raise _DuplicateKeyError(
                    None, None, f"key {show(key)} given twice is not allowed (one value per key)", key_node.start_mark
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def read_yaml(path: Path, origin: str, expected: str, *, allow_empty: bool = False) -> Any:
    """A YAML file's data, read as spec files are: a regular UTF-8 file of at most ``MAX_SPEC_BYTES``,
    libyaml's parser with the safe constructor, no key twice in a mapping, aliases expanding to at
    most ``MAX_SPEC_VALUES`` values, and not empty unless ``allow_empty`` (then ``None``; ``expected``
    says what it must be instead). Errors are a ``SpecError`` naming ``origin``."""
    return _read_yaml(path, origin, expected, allow_empty=allow_empty)


def _read_yaml(path: Path, origin: str, expected: str, *, allow_empty: bool = False) -> Any:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{origin}: is not a regular file (a device, FIFO or socket is never a spec file)")
        if info.st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{origin}: has {info.st_size} bytes; a spec file may have at most {MAX_SPEC_BYTES}")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(f"{origin}: has more than {MAX_SPEC_BYTES} bytes; a spec file may have at most that")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"{origin}: file not found") from None
    except IsADirectoryError:
        raise SpecError(f"{origin}: is a directory, not a spec file") from None
    except UnicodeDecodeError as error:
        raise SpecError(f"{origin}: byte {error.start} is not UTF-8 text (spec files are UTF-8 YAML)") from None
    except OSError as error:
        raise SpecError(f"{origin}: cannot be read ({error.strerror})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(top level)"
        problem = " ".join(str(error.problem or error.context or "not valid YAML").split())
        text = problem if isinstance(error, _DuplicateKeyError) else f"invalid YAML ({problem})"
        raise SpecError(f"{origin}: {where}: {text}") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{origin}: (top level): invalid YAML ({' '.join(str(error).split())})") from None
    except (ValueError, OverflowError) as error:  # e.g. a timestamp such as 2021-13-45
        raise SpecError(f"{origin}: (top level): invalid YAML value ({error})") from None
    except RecursionError:
        raise SpecError(f"{origin}: (top level): invalid YAML (nested too deeply)") from None
    if data is None:
        if allow_empty:
            return None
        raise SpecError(f"{origin}: (top level): the file is empty (must be {expected})")
    try:
        size = _expanded_size(data, {})
    except RecursionError:
        raise SpecError(f"{origin}: (top level): invalid YAML (nested too deeply)") from None
    if size > MAX_SPEC_VALUES:
        raise SpecError(f"{origin}: (top level): YAML aliases expand to more than {MAX_SPEC_VALUES} values "
                        "(an alias bomb, or a recursive alias); write the values out or use fewer aliases")
    return data


def _expanded_size(value: Any, seen: dict[int, int]) -> int:
    """How many values ``value`` holds once every alias is expanded. PyYAML shares one object per
    anchor, so this counts each distinct object once and multiplies: cheap even for an alias bomb."""
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if seen.get(key) == 0:  # a recursive alias: it never ends
        return MAX_SPEC_VALUES + 1
    if key not in seen:
        seen[key] = 0
        children = value.values() if isinstance(value, dict) else value
        total = 1
        for child in children:
            total += _expanded_size(child, seen)
            if total > MAX_SPEC_VALUES:
                break
        seen[key] = total
    return seen[key]
