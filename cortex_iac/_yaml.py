"""Deterministic YAML output, through libyaml when PyYAML has it (several times faster, same bytes)."""

from __future__ import annotations

from typing import Any

import yaml

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(data: Any) -> str:
    """``data`` as block-style YAML with sorted keys and no line folding below 1000 columns."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=1000)
