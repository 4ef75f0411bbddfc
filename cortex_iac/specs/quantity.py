"""Kubernetes resource quantities (`200m`, `1`, `2.5Gi`, `2G`, `1e3`) parsed into exact values.

The grammar, the canonical form and the rounding follow Kubernetes' own `resource.Quantity`
(k8s.io/apimachinery), so `str(Quantity.parse(x))` is what `kubectl` would print for `x`.
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_UP, Context, Decimal, localcontext
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from cortex_iac.specs.problems import rule_error

QuantityFormat = Literal["DecimalSI", "BinarySI", "DecimalExponent"]

QUANTITY_EXAMPLES = "a quantity such as 200m, 1, 0.5, 2.5Gi, 512Mi or 2G"

_PATTERN = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE]?)"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exponent: suffix for suffix, exponent in _DECIMAL.items()}
_BINARY_SUFFIX = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
# Kubernetes keeps nano precision and rounds finer values up; its int64 `Value()` bounds the rest.
_NANO = Decimal("1e-9")
_LIMIT = Decimal(2**63 - 1)
_OUT_OF_RANGE = "must be below 2^63, the largest Kubernetes quantity"
# Enough digits for any value within the limits above at nano precision.
_CONTEXT = Context(prec=60)


@functools.total_ordering
class Quantity:
    """A parsed Kubernetes quantity.

    ``value`` is the exact amount in base units (cores for cpu, bytes for memory) as a `Decimal`;
    ``format`` remembers the notation family (decimal SI, binary SI or exponent) that Kubernetes uses
    for the canonical string. Quantities compare and hash by value, so ``Quantity.parse("1Gi") ==
    Quantity.parse("1073741824")``.
    """

    __slots__ = ("format", "value")

    value: Decimal
    format: QuantityFormat

    def __init__(self, value: Decimal | int, format: QuantityFormat = "DecimalSI") -> None:
        with localcontext(_CONTEXT):
            exact = Decimal(value)
            if not exact.is_finite():
                raise ValueError("must be finite")
            rounded = exact.quantize(_NANO, rounding=ROUND_UP)
            # Drop the padding zeros so that `value` reads as written: Decimal("0.2"), Decimal("2000").
            rounded = rounded.quantize(Decimal(1)) if rounded == rounded.to_integral_value() else rounded.normalize()
        if abs(rounded) > _LIMIT:
            raise ValueError(_OUT_OF_RANGE)
        object.__setattr__(self, "value", rounded)
        object.__setattr__(self, "format", format)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Quantity is immutable")

    @classmethod
    def parse(cls, text: Quantity | str | int | float) -> Quantity:
        """Parse a Kubernetes quantity string (or a YAML int/float such as ``1`` or ``0.5``).

        Raises `ValueError` naming what is accepted when ``text`` is not a quantity.
        """
        if isinstance(text, Quantity):
            return text
        if isinstance(text, bool) or not isinstance(text, (str, int, float)):
            raise ValueError(f"must be {QUANTITY_EXAMPLES}")
        if isinstance(text, float):
            # YAML numbers such as 0.5 or 1e-05 are plain decimal amounts, not exponent notation.
            if text != text or text in (float("inf"), float("-inf")):
                raise ValueError(f"must be {QUANTITY_EXAMPLES}")
            text = format(Decimal(repr(text)), "f")
        match = _PATTERN.fullmatch(text if isinstance(text, str) else str(text))
        if match is None:
            raise ValueError(f"must be {QUANTITY_EXAMPLES}")
        number, suffix = match.group("number"), match.group("suffix")
        if suffix not in _BINARY and len(suffix) > 1:
            exponent = int(suffix[1:])
            if abs(exponent) > 30:
                raise ValueError(_OUT_OF_RANGE)
            with localcontext(_CONTEXT):
                value = Decimal(number).scaleb(exponent)
            return cls(value, "DecimalExponent")
        with localcontext(_CONTEXT):
            if suffix in _BINARY:
                return cls(Decimal(number) * (1024 ** _BINARY[suffix]), "BinarySI")
            return cls(Decimal(number).scaleb(_DECIMAL[suffix]), "DecimalSI")

    def __str__(self) -> str:
        if self.value == 0:
            return "0"
        if self.format == "BinarySI" and abs(self.value) >= 1024 and self.value == self.value.to_integral():
            return self._binary()
        return self._decimal()

    def _binary(self) -> str:
        amount, power = int(self.value), 0
        while power < len(_BINARY_SUFFIX) - 1 and amount % 1024 == 0:
            amount, power = amount // 1024, power + 1
        return f"{amount}{_BINARY_SUFFIX[power]}"

    def _decimal(self) -> str:
        # Strip factors of ten from the integer mantissa, then lower the exponent to a multiple of
        # three: the mantissa stays an integer and the suffix is one of n, u, m, "", k, M, ... E.
        with localcontext(_CONTEXT):
            sign, digits, exponent = self.value.normalize().as_tuple()
        assert isinstance(exponent, int)
        mantissa = int("".join(map(str, digits)))
        shift = exponent % 3
        mantissa, exponent = mantissa * 10**shift, exponent - shift
        text = f"{'-' if sign else ''}{mantissa}"
        if self.format == "DecimalExponent":
            return text if exponent == 0 else f"{text}e{exponent}"
        return text + _DECIMAL_SUFFIX[exponent]

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value == other.value

    def __lt__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value < other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Quantity, (self.value, self.format))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": ["string", "number"], "description": f"a Kubernetes quantity: {QUANTITY_EXAMPLES}"}


def _validate(value: Any) -> Quantity:
    try:
        return Quantity.parse(value)
    except ValueError as error:
        raise rule_error(value, str(error)) from None
