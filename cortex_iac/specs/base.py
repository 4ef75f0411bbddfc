"""The base of every spec model and the field types several models share."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from cortex_iac.specs.problems import rule_error

T = TypeVar("T")

# Cortex's proxy listener (8888) and admin/metrics port (15000), kept by our Envoy sidecar, plus
# the sidecar's admin port (15001).
RESERVED_PORTS = (8888, 15000, 15001)


class SpecModel(BaseModel):
    """Base of the spec models: unknown keys are errors, types are not coerced (``"5"`` is not an
    int), and a key given as null (``tags:`` with nothing after it) means "use the default".

    The docstring under each field is its description (``use_attribute_docstrings``): it shows in
    ``model_json_schema()`` and in the README's field tables (``scripts/gen_spec_docs.py``).

    ``_KEEP_NULL`` names the fields where null is a value of its own rather than "default"
    (``compute.cpu: null`` asks for no CPU request at all, as in Cortex).
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, use_attribute_docstrings=True)

    _KEEP_NULL: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # Only known keys: a misspelt key stays in and is reported, whatever its value.
            return {
                key: value
                for key, value in data.items()
                if value is not None or key in cls._KEEP_NULL or key not in cls.model_fields
            }
        return data


def written(spec: SpecModel) -> dict[str, Any]:
    """The fields of ``spec`` that differ from their defaults: what to show of it in a message."""
    return spec.model_dump(exclude_defaults=True)


def rule(predicate: Callable[[T], bool], requirement: str) -> AfterValidator:
    """A field validator that rejects values for which ``predicate`` is false, saying ``requirement``."""

    def check(value: T) -> T:
        if not predicate(value):
            raise rule_error(value, requirement)
        return value

    return AfterValidator(check)


def pattern(regex: re.Pattern[str], requirement: str) -> AfterValidator:
    """A field validator that accepts only strings matching ``regex`` in full."""
    return rule(lambda text: isinstance(text, str) and regex.fullmatch(text) is not None, requirement)


_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def dns_label(max_length: int, *, letter_first: bool) -> AfterValidator:
    """A validator of names used as Kubernetes names: lowercase letters, digits and '-', starting
    with a letter (RFC 1035, what Services need) or a letter or digit (RFC 1123)."""
    pattern = _DNS_1035 if letter_first else _DNS_1123
    start = "a letter" if letter_first else "a letter or digit"
    requirement = (
        f"must be at most {max_length} characters of a-z, 0-9 and '-', starting with {start} "
        "and ending with a letter or digit"
    )
    return rule(lambda name: isinstance(name, str) and len(name) <= max_length and pattern.fullmatch(name) is not None,
                requirement)


NonEmptyStr = Annotated[str, Field(min_length=1)]

Port = Annotated[
    int,
    Field(ge=1, le=65535),
    rule(lambda port: port not in RESERVED_PORTS, "8888, 15000 and 15001 are reserved for the sidecar proxy"),
]
"""A container port: 1..65535 except the ports of the sidecar proxy."""

NodeGroupName = Annotated[str, dns_label(26, letter_first=False)]
"""A node-group name: an RFC 1123 label of at most 26 characters (Cortex's limit, kept so that
the names derived from it stay within AWS and Kubernetes limits)."""
