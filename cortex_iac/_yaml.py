"""Deterministic YAML output: PyYAML's text (libyaml's emitter when PyYAML has it), with the block layout of
the renderers' documents written here without PyYAML's representer (same bytes; see below)."""

from __future__ import annotations

from typing import Any

import yaml

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_WIDTH = 1000


def dump(data: Any) -> str:
    """``data`` as block-style YAML with sorted keys and no line folding below 1000 columns."""
    fast = _block(data)
    return fast if fast is not None else _library_dump(data)


def _library_dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=_WIDTH)


# The same text, written here for the documents the renderers make (nested dicts with string keys,
# lists, and single-line strings, numbers, bools and nulls), without PyYAML's representer: it builds
# a node per value, most of the time a dump takes (an Envoy config has a few hundred). Only the block
# layout is written here, anchors and aliases included (a container reached twice: PyYAML numbers
# them in the order of their second encounter); each scalar's text is PyYAML's own, dumped alone once
# and kept, which is the same in any block position for a single-line scalar (its quoting and
# escapes do not depend on it). Anything else (another type, a multi-line or very long scalar, a long
# key, a document that contains itself) makes the whole document go through PyYAML.
# tests/test_yaml.py compares the two.

_SCALARS: dict[tuple[type, Any], str | None] = {}  # (type, value): True == 1 == 1.0
_SCALAR_TYPES = (str, int, bool, float, type(None))
_MAX_KEY = 100  # bytes: PyYAML writes longer keys (from 128) as "? key" entries, and keys with line breaks
_LINE_BREAKS = frozenset("\r\n\x85\u2028\u2029")
_MAX_LINE = _WIDTH - 100  # lines that cannot reach the folding width, in any position


class _Fallback(Exception):
    """The document has something the fast path does not write: PyYAML writes all of it."""


def _scalar(value: Any) -> str:
    key = (type(value), repr(value) if type(value) is float else value)  # -0.0 == 0.0, NaN != NaN
    try:
        text = _SCALARS[key]
    except KeyError:
        try:
            dumped = _library_dump([value])  # "- <scalar>\n" for a single-line scalar
        except Exception:  # noqa: BLE001 - e.g. a lone surrogate: PyYAML's dump of the document says what
            raise _Fallback from None
        text = dumped[2:-1] if dumped.startswith("- ") and dumped.count("\n") == 1 else None
        if len(_SCALARS) < 100_000:
            _SCALARS[key] = text
    if text is None:
        raise _Fallback
    return text


_KEYS: dict[str, str | None] = {}


def _key(key: str) -> str:
    try:
        text = _KEYS[key]
    except KeyError:
        simple = len(key.encode()) <= _MAX_KEY and _LINE_BREAKS.isdisjoint(key)
        text = _scalar(key) if simple else None
        if len(_KEYS) < 100_000:
            _KEYS[key] = text
    if text is None:
        raise _Fallback
    return text


def _block(data: Any) -> str | None:
    if type(data) not in (dict, list) or not data:
        return None  # scalar documents (which end with "...") and empty ones: PyYAML's
    writer = _Writer()
    try:
        writer.find_anchors(data)
        if id(data) in writer.anchors:
            return None
        writer.node(data, 0, "")
    except (_Fallback, RecursionError):
        return None
    return "\n".join(writer.lines) + "\n"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.anchors: dict[int, str] = {}  # id of a container reached twice: its anchor
        self.written: set[int] = set()  # anchored containers written once (later: aliases)

    def find_anchors(self, value: Any) -> None:
        seen: set[int] = set()

        def visit(value: Any) -> None:
            kind = type(value)
            if kind is not dict and kind is not list:
                return
            if id(value) in seen:
                if id(value) not in self.anchors:
                    self.anchors[id(value)] = f"id{len(self.anchors) + 1:03d}"
                return
            seen.add(id(value))
            if kind is dict:
                if not all(type(k) is str for k in value):
                    raise _Fallback
                for key in sorted(value):
                    visit(value[key])
            else:
                for item in value:
                    visit(item)

        visit(value)

    def node(self, value: Any, indent: int, lead: str) -> None:
        """Write ``value`` (a non-empty dict or list) as a block at column ``indent``; its first
        line starts with ``lead`` (the dashes of the sequence items it is the first thing in)
        instead of spaces."""
        pad = " " * indent
        first = True
        if type(value) is dict:
            for key in sorted(value):
                self.entry(value[key], (lead if first else pad) + _key(key) + ":", indent, True)
                first = False
        else:
            for item in value:
                self.entry(item, (lead if first else pad) + "-", indent, False)
                first = False

    def entry(self, value: Any, start: str, indent: int, in_mapping: bool) -> None:
        # A mapping's value (start: "key:") or a sequence's item (start: "-") at column indent: a
        # scalar, an alias or an empty container on the same line; below it, a mapping's mapping
        # two columns in and its sequence at the key's column, and an anchored sequence item's
        # block two columns in; after the dash, an unanchored sequence item's mapping or sequence.
        kind = type(value)
        if kind in _SCALAR_TYPES:
            self.line(start + " " + _scalar(value))
            return
        if kind is not dict and kind is not list:
            raise _Fallback
        anchor = self.anchors.get(id(value))
        if anchor is not None:
            if id(value) in self.written:
                self.line(start + " *" + anchor)
                return
            self.written.add(id(value))
            start += " &" + anchor
        if not value:
            self.line(start + (" {}" if kind is dict else " []"))
        elif in_mapping:
            self.line(start)
            column = indent + 2 if kind is dict else indent
            self.node(value, column, " " * column)
        elif anchor is not None:
            self.line(start)
            self.node(value, indent + 2, " " * (indent + 2))
        else:
            self.node(value, indent + 2, start + " ")

    def line(self, text: str) -> None:
        if len(text) > _MAX_LINE:
            raise _Fallback
        self.lines.append(text)
