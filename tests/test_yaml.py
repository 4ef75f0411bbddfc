"""cortex_iac._yaml writes the renderers' documents itself: byte for byte what PyYAML writes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_iac import _yaml
from tests.plan.fixtures.stacks import scenario_plan

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8) | st.sampled_from(
    ["", " ", "yes", "null", "~", "1.5", "0x1f", "2024-01-01", "-", "- a", "a: b", "a:", "#x", "*", "&a", "!t",
     "@type", "'q'", '"q"', "%", "`", "a #b", " lead", "trail ", "\t", "é", "\x85", "\u2028", "|", ">", "[a]", "{a}",
     "on", "OFF", ".inf", "-.NaN", "1_000", "0o17", "+1", "=", "? x", ":path", "a\nb", "long " * 30]
)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.sampled_from([0.0, -0.0, 1.0, 1]), _TEXT)
_KEYS = _TEXT | st.sampled_from(["k" * 99, "k" * 100, "k" * 101, "k" * 130])


def _documents() -> st.SearchStrategy[Any]:
    tree = st.recursive(
        _SCALAR,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
        max_leaves=20,
    )
    return st.lists(tree, min_size=1, max_size=3).flatmap(
        lambda parts: st.lists(st.sampled_from(parts), min_size=1, max_size=5).flatmap(
            # the same objects in several places, as dicts and lists: PyYAML anchors and aliases
            lambda chosen: st.one_of(st.just(chosen), st.just({f"k{i}": part for i, part in enumerate(chosen)}),
                                     st.just({"a": chosen, "b": [chosen[0], {"c": chosen}]}))
        )
    )


@settings(max_examples=600, deadline=None)
@given(_documents())
def test_the_fast_writer_writes_what_pyyaml_writes(document: Any) -> None:
    library = _yaml._library_dump(document)
    assert _yaml.dump(document) == library
    fast = _yaml._block(document)
    assert fast is None or fast == library


def test_the_renderers_documents_take_the_fast_path_and_pyyaml_reads_them_back() -> None:
    # Every YAML document of the preview stack's objects (Envoy configs, rules, dashboards' YAML).
    documents = []
    for resource in scenario_plan(None)["resources"]:
        data = (resource.get("inputs") or {}).get("data")
        for text in (data or {}).values() if isinstance(data, dict) else ():
            if isinstance(text, str) and text.startswith(("admin:", "groups:", "static_resources:")):
                documents.append(yaml.safe_load(text))
    assert len(documents) >= 3
    for document in documents:
        fast = _yaml._block(document)
        assert fast is not None and fast == _yaml._library_dump(document)
        assert yaml.safe_load(fast) == document


@pytest.mark.parametrize("document", [
    {"a": "two\nlines"},  # a multi-line scalar: its layout depends on where it is
    {"k" * 130: 1},  # a key PyYAML writes as "? key"
    {"a": ("t", "u")},  # a type the fast path does not write (SafeDumper refuses tuples too)
    {"a": "x " * 600},  # a line that may fold
    {1: "a"},  # a key that is not a string
])
def test_what_the_fast_path_does_not_write_goes_to_pyyaml(document: Any) -> None:
    assert _yaml._block(document) is None
    try:
        expected = _yaml._library_dump(document)
    except yaml.representer.RepresenterError:
        with pytest.raises(yaml.representer.RepresenterError):
            _yaml.dump(document)
        return
    assert _yaml.dump(document) == expected


def test_a_document_that_contains_itself_goes_to_pyyaml() -> None:
    document: dict[str, Any] = {"a": 1}
    document["self"] = document
    assert _yaml._block(document) is None
    assert _yaml.dump(document) == _yaml._library_dump(document)
    nested: list[Any] = [1]
    nested.append(nested)
    outer = {"x": nested}
    assert _yaml.dump(outer) == _yaml._library_dump(outer)


def test_a_scalar_pyyaml_cannot_write_fails_as_pyyaml_fails() -> None:
    document = {"a": ["\ud800", 1]}  # a lone surrogate
    assert _yaml._block(document) is None
    with pytest.raises(Exception) as library:
        _yaml._library_dump(document)
    with pytest.raises(type(library.value)):
        _yaml.dump(document)
