#!/usr/bin/env python3
"""Generate the README's tables of the cluster.yaml and cortex.yaml fields from the spec models.

Every field of the spec models (``cortex_iac/specs/``) carries its description as the docstring under
it (pydantic's ``use_attribute_docstrings``). This script walks the models and prints two markdown
tables, one row per field path (``node_groups[].spot_config.max_price``,
``pod.containers[].compute.cpu``): the type or allowed values (from the annotation and its ``Field``
constraints), the default, the description and, for cortex.yaml, the kinds that take the field (from
the API models' fields and the class variables of `WorkloadSpec` with which a kind refuses a shared
pod field).

    python scripts/gen_spec_docs.py            # print the tables
    python scripts/gen_spec_docs.py --write    # rewrite them in README.md, between the markers
    python scripts/gen_spec_docs.py --check    # exit 1 when README.md's tables are not these

The output depends only on the models: fields in declaration order, kinds in Cortex's order.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing it
    sys.path.insert(0, str(REPO))

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen  # noqa: E402
from pydantic import BaseModel, WithJsonSchema  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402

from cortex_iac.specs.api import (  # noqa: E402
    API_KINDS,
    API_SPEC_MODELS,
    AutoscalingSpec,
    NetworkingSpec,
    WorkloadSpec,
)
from cortex_iac.specs.base import SpecModel  # noqa: E402
from cortex_iac.specs.cluster import ClusterSpec  # noqa: E402
from cortex_iac.specs.duration import DURATION_EXAMPLES  # noqa: E402
from cortex_iac.specs.quantity import Quantity  # noqa: E402

README = REPO / "README.md"
START = "<!-- spec-fields:start -->"
END = "<!-- spec-fields:end -->"

# Fields declared with a None default their type refuses: the model fills them in from other fields.
COMPUTED_DEFAULTS: dict[tuple[type[SpecModel], str], str] = {
    (AutoscalingSpec, "init_replicas"): "`min_replicas`",
    (AutoscalingSpec, "target_in_flight"): "`pod.max_concurrency`",
    (NetworkingSpec, "endpoint"): "`/<name>`",
    (ClusterSpec, "nat_gateway"): "`single` for private subnets, else `none`",
}

_NOUNS = {str: "string", int: "integer", float: "number", bool: "boolean", Quantity: "quantity"}


@dataclass
class Row:
    """One field path of a table."""

    path: str
    type: str
    default: str
    description: str
    kinds: list[str] = field(default_factory=list)


# ---- reading annotations


def _unwrap(annotation: Any, metadata: Sequence[Any] = ()) -> tuple[Any, list[Any]]:
    """``annotation`` without its ``Annotated`` layers, and all their metadata (``Field(...)`` expanded)."""
    found = list(metadata)
    while typing.get_origin(annotation) is typing.Annotated:
        annotation, *more = typing.get_args(annotation)
        found += more
    expanded: list[Any] = []
    for item in found:
        expanded += item.metadata if isinstance(item, FieldInfo) else [item]
    return annotation, expanded


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _arms(annotation: Any) -> tuple[list[Any], bool]:
    """The non-None arms of a union (or the annotation itself), and whether None is one of its arms."""
    if not _is_union(annotation):
        return [annotation], False
    args = typing.get_args(annotation)
    return [a for a in args if a is not type(None)], type(None) in args


def _accepts_none(annotation: Any) -> bool:
    return _arms(_unwrap(annotation)[0])[1]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def nested_model(annotation: Any) -> tuple[type[SpecModel], bool] | None:
    """The spec model a field holds (and whether as a list of them), or None for a plain value."""
    annotation = _unwrap(annotation)[0]
    arms, _ = _arms(annotation)
    if len(arms) != 1:
        return None
    inner = _unwrap(arms[0])[0]
    if _is_model(inner):
        return inner, False
    if typing.get_origin(inner) is list:
        item = _unwrap(typing.get_args(inner)[0])[0]
        if _is_model(item):
            return item, True
    return None


def _bounds(metadata: Sequence[Any]) -> tuple[str | None, str | None, Any, Any]:
    low: str | None = None
    high: str | None = None
    low_value: Any = None
    high_value: Any = None
    for item in metadata:
        if isinstance(item, Ge):
            low, low_value = "[", item.ge
        elif isinstance(item, Gt):
            low, low_value = "(", item.gt
        elif isinstance(item, Le):
            high, high_value = "]", item.le
        elif isinstance(item, Lt):
            high, high_value = ")", item.lt
    return low, high, low_value, high_value


def _range(metadata: Sequence[Any]) -> str:
    low, high, low_value, high_value = _bounds(metadata)
    if low and high:
        return f" in {low}{low_value}, {high_value}{high}"
    if low:
        return f" {'>=' if low == '[' else '>'} {low_value}"
    if high:
        return f" {'<=' if high == ']' else '<'} {high_value}"
    return ""


def _lengths(metadata: Sequence[Any]) -> tuple[int | None, int | None]:
    low = next((m.min_length for m in metadata if isinstance(m, MinLen)), None)
    high = next((m.max_length for m in metadata if isinstance(m, MaxLen)), None)
    return low, high


def _plural(noun: str, plural: bool) -> str:
    return noun if not plural else "mappings" if noun == "mapping" else noun + "s"


def type_text(annotation: Any, metadata: Sequence[Any] = (), *, plural: bool = False, keep_null: bool = False) -> str:
    """What a field takes, in words: ``integer >= 0``, ``list of strings (at least 1)``, ``one of `a`, `b```."""
    annotation, metadata = _unwrap(annotation, metadata)
    if _is_union(annotation):
        arms, nullable = _arms(annotation)
        if len(arms) == 1:  # Optional: the field's constraints are the arm's
            text = type_text(arms[0], metadata, plural=plural)
        else:
            text = " or ".join(type_text(arm, plural=plural) for arm in arms)
        return text + (" or null" if nullable and keep_null else "")
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin is list:
        low, high = _lengths(metadata)
        limits = [f"at least {low}"] if low else []
        limits += [f"at most {high}"] if high is not None else []
        items = type_text(typing.get_args(annotation)[0], plural=True)
        return f"list of {items}" + (f" ({', '.join(limits)})" if limits else "")
    if origin is dict:
        key, value = typing.get_args(annotation)
        if value is Any:
            return _plural("mapping", plural)
        return f"{_plural('mapping', plural)} of {type_text(key)} to {type_text(value)}"
    if _is_model(annotation):
        return _plural("mapping", plural)
    schemas = [m.json_schema for m in metadata if isinstance(m, WithJsonSchema)]
    if annotation is int and any(s and s.get("description") == DURATION_EXAMPLES for s in schemas):
        return _plural("duration", plural)
    if annotation not in _NOUNS:
        raise TypeError(f"no words for the field type {annotation!r}: teach scripts/gen_spec_docs.py")
    noun = _plural(_NOUNS[annotation], plural)
    if annotation is str:
        low, high = _lengths(metadata)
        if low and high is not None:
            return f"{noun} of {low} to {high} characters"
        if high is not None:
            return f"{noun} of at most {high} characters"
        return f"non-empty {noun}" if low else noun
    return noun + _range(metadata)


def _is_duration(info: FieldInfo) -> bool:
    return type_text(info.annotation, info.metadata) == "duration"


def default_text(model: type[SpecModel], name: str, info: FieldInfo) -> str:
    """The field's default as written in YAML, ``required``, or what the model fills in."""
    if info.is_required():
        return "required"
    for (owner, field_name), text in COMPUTED_DEFAULTS.items():
        if issubclass(model, owner) and field_name == name:
            return text
    value = info.get_default(call_default_factory=True)
    if value is None:
        if not _accepts_none(info.annotation):
            raise ValueError(f"{model.__name__}.{name}: default None that its type refuses; add it to COMPUTED_DEFAULTS")
        return "none"
    if isinstance(value, BaseModel):
        return "`{}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int) and _is_duration(info):
        return f"`{value}s`"
    if isinstance(value, (list, dict)):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def description_text(model: type[SpecModel], name: str, info: FieldInfo) -> str:
    """The field's docstring on one line, as markdown."""
    if not info.description or not info.description.strip():
        raise ValueError(f"{model.__name__}.{name}: no docstring (put one under the field)")
    text = " ".join(info.description.split())
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    return text.replace("<", "&lt;")


def walk(model: type[SpecModel], prefix: str = "") -> Iterator[Row]:
    """A row per field of ``model`` and, after each field holding models, the rows of their fields."""
    for name, info in model.model_fields.items():
        path = prefix + name
        keep_null = name in model._KEEP_NULL
        yield Row(
            path=path,
            type=type_text(info.annotation, info.metadata, keep_null=keep_null),
            default=default_text(model, name, info),
            description=description_text(model, name, info),
        )
        nested = nested_model(info.annotation)
        if nested is not None:
            inner, is_list = nested
            yield from walk(inner, path + ("[]." if is_list else "."))


# ---- which kinds take which field

_CONTAINERS = "pod.containers[]."


def refused_paths(model: type[WorkloadSpec]) -> dict[str, str]:
    """The shared pod fields kind ``model`` refuses (WorkloadSpec._kind_support), each with why."""
    refused = {f"{_CONTAINERS}pre_stop.http_get": "every kind"}
    if not model._KIND_HAS_PORT:
        refused["pod.port"] = "_KIND_HAS_PORT"
    if model._MAX_CONCURRENCY is None:
        refused["pod.max_concurrency"] = "_MAX_CONCURRENCY"
    if not model._KIND_HAS_QUEUE:
        refused["pod.max_queue_length"] = "_KIND_HAS_QUEUE"
    if not model._KIND_HAS_REQUEST_TIMEOUT:
        refused["pod.request_timeout"] = "_KIND_HAS_REQUEST_TIMEOUT"
    if model._READINESS == "none":
        refused[f"{_CONTAINERS}readiness_probe"] = "_READINESS"
    elif model._READINESS == "no-exec":
        refused[f"{_CONTAINERS}readiness_probe.exec"] = "_READINESS"
    if not model._KIND_HAS_PRE_STOP:
        refused[f"{_CONTAINERS}pre_stop"] = "_KIND_HAS_PRE_STOP"
    if not model._KIND_HAS_HANDLER:
        refused[f"{_CONTAINERS}handler"] = "_KIND_HAS_HANDLER"
    return refused


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[]")


@functools.cache
def _paths(kind: str) -> frozenset[str]:
    return frozenset(row.path for row in walk(API_SPEC_MODELS[kind]))


def takes(kind: str, path: str) -> bool:
    """Whether APIs of ``kind`` take the field ``path`` (it is one of the kind's fields, not refused)."""
    model = API_SPEC_MODELS[kind]
    if path not in _paths(kind):
        return False
    if not issubclass(model, WorkloadSpec):
        return True
    return not any(_under(path, refused) for refused in refused_paths(model))


def kinds_taking(path: str) -> list[str]:
    """The kinds, in Cortex's order, that take the field ``path``."""
    return [kind for kind in API_KINDS if takes(kind, path)]


def _kinds_text(path: str, kinds: list[str]) -> str:
    if not kinds:
        return "none (refused by every kind)"
    if kinds == list(API_KINDS):
        return "all"
    limits: dict[str, str] = {}
    if path == "pod.max_concurrency":
        limits = {kind: f" (<= {API_SPEC_MODELS[kind]._MAX_CONCURRENCY})" for kind in kinds}  # type: ignore[attr-defined]
    return ", ".join(kind + limits.get(kind, "") for kind in kinds)


def api_rows() -> list[Row]:
    """The rows of cortex.yaml: every field path of every kind, with the kinds taking it."""
    rows: dict[str, Row] = {}
    for kind in API_KINDS:
        for row in walk(API_SPEC_MODELS[kind]):
            if row.path == "kind":  # the discriminator: each model allows its own kind only
                row.type, row.default = "one of " + ", ".join(f"`{k}`" for k in API_KINDS), "required"
            known = rows.setdefault(row.path, row)
            if (known.type, known.default, known.description) != (row.type, row.default, row.description):
                raise ValueError(f"{row.path}: {kind} describes it differently from an earlier kind: {row} != {known}")
    for path, row in rows.items():
        row.kinds = kinds_taking(path)
    return list(rows.values())


def cluster_rows() -> list[Row]:
    """The rows of cluster.yaml."""
    return list(walk(ClusterSpec))


# ---- markdown


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(rows: Sequence[Row], *, with_kinds: bool) -> str:
    head = ["field", "kinds", "type / allowed values", "default", "description"]
    if not with_kinds:
        head.remove("kinds")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"`{row.path}`"]
        cells += [_kinds_text(row.path, row.kinds)] if with_kinds else []
        cells += [row.type, row.default, row.description]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def render() -> str:
    """The text between the README's markers (the markers excluded), ending in a newline."""
    parts = [
        "<!-- Generated by scripts/gen_spec_docs.py from the field docstrings in cortex_iac/specs/; "
        "edit those, then run: python scripts/gen_spec_docs.py --write -->",
        "### cluster.yaml",
        "Durations are Go-style (`60s`, `5m`, `1h30m`) or an integer of seconds; quantities are "
        "Kubernetes quantities (`200m`, `1`, `512Mi`, `2Gi`). A key given as null means its default.",
        table(cluster_rows(), with_kinds=False),
        "### cortex.yaml",
        "One entry per API. *kinds*: the kinds that take the field; any other kind refuses it.",
        table(api_rows(), with_kinds=True),
    ]
    return "\n\n".join(parts) + "\n"


def replace_block(readme: str, block: str) -> str:
    """``readme`` with the text between the markers replaced by ``block``."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start or readme.count(START) != 1 or readme.count(END) != 1:
        raise ValueError(f"README must hold {START} and then {END}, once each")
    return readme[: start + len(START)] + "\n" + block + readme[end:]


def current_block(readme: str) -> str:
    """The text between the README's markers, as :func:`render` writes it."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README must hold {START} and then {END}")
    return readme[start + len(START) + 1 : end]


def main(argv: Sequence[str] | None = None, out: Callable[[str], Any] = sys.stdout.write) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the tables in the README in place")
    mode.add_argument("--check", action="store_true", help="exit 1 when the README's tables differ")
    parser.add_argument("--readme", type=Path, default=README, help="the README to write or check (default: the repo's)")
    args = parser.parse_args(argv)
    block = render()
    if not (args.write or args.check):
        out(block)
        return 0
    text = args.readme.read_text(encoding="utf-8")
    if args.check:
        if current_block(text) != block:
            out(f"{args.readme}: the spec field tables are out of date; run python scripts/gen_spec_docs.py --write\n")
            return 1
        return 0
    updated = replace_block(text, block)
    if updated != text:
        args.readme.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
