"""Pydantic's validation errors, translated into one line per problem:

    <origin>: <field path>: <bad value> is not allowed (<what is allowed>)
    <origin>: <field path>: required key is missing
    <origin>: <field path>: unknown key (did you mean '<key>'? allowed keys: <keys>)
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from cortex_iac.specs.problems import MISSING, RULES_ERROR, Path, Phrase

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_MAX_SHOWN = 60

_TYPE_NAMES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def show(value: Any) -> str:
    """A short, YAML-like rendering of a bad value for a message (JSON-style for mappings and lists)."""
    if value is MISSING:
        return "(missing)"
    if isinstance(value, Phrase):
        return str(value)
    text = _render(value, _MAX_SHOWN + 1)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _render(value: Any, budget: int) -> str:
    # Stops once `budget` characters are written, so a huge or deeply nested value (YAML aliases can
    # make both cheaply) costs no more than the text that is shown.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if isinstance(value, _Quoted) else repr(value)
    if isinstance(value, (dict, list, tuple)):
        items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        text = opening
        for key, item in items:
            if len(text) >= budget:
                break
            if len(text) > 1:
                text += ", "
            if isinstance(value, dict):
                text += json.dumps(str(key), ensure_ascii=False) + ": "
            text += _render(_Quoted(item) if isinstance(item, str) else item, budget - len(text))
        return text + closing if len(text) < budget else text
    return str(value)


class _Quoted(str):
    """A string inside a mapping or list, shown with JSON's double quotes like the rest of it."""


def suggest(word: str, options: Sequence[str]) -> str | None:
    """The option closest to ``word`` (ignoring case), if one is close enough to be a likely typo."""
    by_lower = {option.lower(): option for option in options}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def format_path(root: str, loc: Path, data: Any) -> str:
    """``loc`` as written in a spec file, e.g. ``apis[1].autoscaling.max_replicas``.

    ``data`` (the validated input) tells list indexes from integer mapping keys.
    """
    text, node = root, data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list):
            text += f"[{part}]"
            node = node[part] if 0 <= part < len(node) else None
            continue
        if isinstance(part, str) and _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
        node = node.get(part) if isinstance(node, dict) else None
    return text or "(top level)"


def problem_lines(error: ValidationError, *, origin: str, root: str, data: Any, model: type[BaseModel]) -> list[str]:
    """One message line per problem in ``error``, raised by validating ``data`` as ``model``.

    ``root`` is the path of ``data`` in its file (``apis[1]``, or ``""`` for a cluster file).
    """
    lines: list[str] = []
    for item in error.errors(include_url=False):
        loc = tuple(part for part in item["loc"] if part != "[key]")
        for sub_loc, text in _describe(item, loc, model):
            lines.append(f"{origin}: {format_path(root, sub_loc, data)}: {text}")
    return lines


def _describe(item: Any, loc: Path, model: type[BaseModel]) -> list[tuple[Path, str]]:
    kind, value, ctx = item["type"], item["input"], item.get("ctx") or {}
    # A mapping key failed: say so, since the path ends at the key itself.
    key = "key " if item["loc"] and item["loc"][-1] == "[key]" else ""
    if kind == RULES_ERROR:
        return [(loc + sub, key + _rule_text(bad, requirement)) for sub, bad, requirement in ctx["problems"]]
    if kind == "missing":
        return [(loc, "required key is missing" + _options_hint(_type_at(model, loc), None))]
    if kind == "extra_forbidden":
        return [(loc, _unknown_key(str(loc[-1]), _type_at(model, loc[:-1])))]
    if kind == "invalid_key":
        return [(loc, f"key {show(value)} is not allowed (keys must be strings)")]
    if kind == "literal_error":
        return [(loc, f"{show(value)} is not allowed{_options_hint(_type_at(model, loc), value)}")]
    return [(loc, f"{key}{show(value)} is not allowed ({_requirement(kind, ctx, item['msg'])})")]


def _rule_text(value: Any, requirement: str) -> str:
    if value is MISSING:
        return f"required key is missing ({requirement})"
    return f"{show(value)} is not allowed ({requirement})"


def _requirement(kind: str, ctx: dict[str, Any], message: str) -> str:
    if kind in _TYPE_NAMES:
        return _TYPE_NAMES[kind]
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"must be {_BOUNDS[kind]} {bound}"
    if kind in ("too_short", "too_long"):
        count = ctx.get("min_length", ctx.get("max_length"))
        items = "item" if count == 1 else "items"
        return f"must have {'at least' if kind == 'too_short' else 'at most'} {count} {items}"
    if kind == "string_too_short":
        count = ctx["min_length"]
        return "must not be empty" if count == 1 else f"must have at least {count} characters"
    if kind == "string_too_long":
        return f"must have at most {ctx['max_length']} characters"
    return message.splitlines()[0].lower() if message else kind


def _unknown_key(key: str, parent: Any) -> str:
    if not (isinstance(parent, type) and issubclass(parent, BaseModel)):
        return "unknown key"
    allowed = list(parent.model_fields)
    close = suggest(key, allowed)
    hint = f"did you mean {close!r}? " if close else ""
    kind = parent.model_fields.get("kind")
    scope = f" for {kind.default}" if kind is not None and isinstance(kind.default, str) else ""
    return f"unknown key ({hint}allowed keys{scope}: {', '.join(allowed)})"


def _options_hint(field_type: Any, value: Any) -> str:
    if get_origin(field_type) is not Literal:
        return ""
    options = [str(option) for option in get_args(field_type)]
    close = suggest(value, options) if isinstance(value, str) else None
    hint = f"; did you mean {close!r}?" if close else ""
    return f" (must be one of: {', '.join(options)}{hint})"


def _type_at(model: Any, loc: Path) -> Any:
    """The declared type of the field at ``loc`` below ``model``, or None where the path leaves the
    models (e.g. inside a free-form mapping)."""
    current = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is list and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    return _unwrap(current)


def _unwrap(field_type: Any) -> Any:
    while True:
        if get_origin(field_type) is typing.Annotated:
            field_type = get_args(field_type)[0]
        elif get_origin(field_type) in (Union, types.UnionType):
            options = [arg for arg in get_args(field_type) if arg is not type(None)]
            if len(options) != 1:
                return field_type
            field_type = options[0]
        else:
            return field_type
