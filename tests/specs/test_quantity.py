from __future__ import annotations

from decimal import Decimal

import pytest

from cortex_iac.specs import Quantity

# (written, exact value in base units, canonical string as Kubernetes prints it)
GOOD = [
    ("200m", "0.2", "200m"),
    ("1", "1", "1"),
    (1, "1", "1"),
    (0.5, "0.5", "500m"),
    ("0.5", "0.5", "500m"),
    ("1.5", "1.5", "1500m"),
    ("1000m", "1", "1"),
    ("1000", "1000", "1k"),
    ("2.5Gi", "2684354560", "2560Mi"),
    ("1.5Gi", "1610612736", "1536Mi"),
    ("128Mi", "134217728", "128Mi"),
    ("1Ki", "1024", "1Ki"),
    ("0.5Ki", "512", "512"),
    ("1.5Ki", "1536", "1536"),
    ("2G", "2000000000", "2G"),
    ("1.5G", "1500000000", "1500M"),
    ("1k", "1000", "1k"),
    ("1M", "1000000", "1M"),
    ("1T", "1000000000000", "1T"),
    ("1P", "1000000000000000", "1P"),
    ("1E", "1000000000000000000", "1E"),
    ("7Ei", str(7 * 1024**6), "7Ei"),
    ("1e3", "1000", "1e3"),
    ("1E3", "1000", "1e3"),
    ("12e6", "12000000", "12e6"),
    ("1e-3", "0.001", "1e-3"),
    ("1.5e3", "1500", "1500"),
    ("100u", "0.0001", "100u"),
    ("5n", "0.000000005", "5n"),
    ("0.0000000001", "0.000000001", "1n"),  # Kubernetes rounds below nano up
    (".5", "0.5", "500m"),
    ("5.", "5", "5"),
    ("+5", "5", "5"),
    ("-1", "-1", "-1"),
    ("0", "0", "0"),
    ("0Gi", "0", "0"),
    (1e-05, "0.00001", "10u"),
]

BAD = [
    "",
    " 1",
    "1 ",
    "abc",
    "Gi",
    "1.2.3",
    "1 Gi",
    "1KiB",
    "1gi",
    "1K",
    "e3",
    "1e",
    "1e1.5",
    "--1",
    "0x10",
    True,
    None,
    [1],
    float("inf"),
    float("nan"),
]


@pytest.mark.parametrize(("written", "value", "canonical"), GOOD)
def test_parses_value_and_canonical_string(written: str | int | float, value: str, canonical: str) -> None:
    quantity = Quantity.parse(written)
    assert quantity.value == Decimal(value)
    assert str(quantity) == canonical
    assert Quantity.parse(str(quantity)) == quantity  # the canonical form reads back as the same amount


@pytest.mark.parametrize("written", BAD)
def test_rejects_what_is_not_a_quantity(written: object) -> None:
    with pytest.raises(ValueError, match=r"^must be a quantity such as 200m, 1, 0.5, 2.5Gi, 512Mi or 2G$"):
        Quantity.parse(written)  # type: ignore[arg-type]


@pytest.mark.parametrize("written", ["9Ei", "1e99", "10E", 1e20])
def test_rejects_amounts_beyond_kubernetes_range(written: str | float) -> None:
    with pytest.raises(ValueError, match=r"^must be below 2\^63, the largest Kubernetes quantity$"):
        Quantity.parse(written)


def test_compares_and_hashes_by_value() -> None:
    assert Quantity.parse("1Gi") == Quantity.parse("1073741824")
    assert hash(Quantity.parse("1000m")) == hash(Quantity.parse("1"))
    assert Quantity.parse("20m") < Quantity.parse("0.1") <= Quantity.parse("100m")
    assert Quantity.parse("1") != "1"


def test_is_immutable() -> None:
    quantity = Quantity.parse("1")
    with pytest.raises(AttributeError):
        quantity.value = Decimal(2)  # type: ignore[misc]


def test_repr_shows_canonical_form() -> None:
    assert repr(Quantity.parse("2.5Gi")) == "Quantity('2560Mi')"
