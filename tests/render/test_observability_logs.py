"""Logs: the Fluent Bit filters that make API, kind and pod top-level fields, the runtime's request
id, and the Logs Insights queries (they name only fields the filters and the runtime produce).

No Fluent Bit binary is available here (not in Debian's or PyPI's lists), so the filter sections are
checked as the text the chart places in fluent-bit.conf, against the plugins' documented keys.
"""

from __future__ import annotations

import io
import json
import logging
import re

from cortex_iac.render import addons
from cortex_iac.render.observability.logs import LOGS_INSIGHTS_QUERIES, RENAMES, fluent_bit_filters
from cortex_iac.render.workload import labels
from cortex_iac.serving.logs import AccessLog, JsonFormatter, request_id_of

_PLUGIN_KEYS = {"nest": {"Name", "Match", "Operation", "Nested_under", "Add_prefix"},
                "modify": {"Name", "Match", "Rename"}}


def _sections(text: str) -> list[list[tuple[str, str]]]:
    sections: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if line == "[FILTER]":
            sections.append([])
        else:
            key, _, value = line.strip().partition(" ")
            sections[-1].append((key, value.strip()))
    return sections


def test_the_filters_lift_kubernetes_metadata_then_name_the_fields() -> None:
    sections = _sections(fluent_bit_filters())
    for section in sections:
        name = dict(section)["Name"]
        assert {k for k, _ in section} <= _PLUGIN_KEYS[name], section
        assert dict(section)["Match"] == "kube.*"  # the chart's input tag
    assert [dict(s).get("Nested_under") for s in sections[:2]] == ["kubernetes", "k8s_labels"]
    renames = [v.split(" ") for k, v in sections[2] if k == "Rename"]
    assert renames == [[old, new] for old, new in RENAMES]
    assert dict(RENAMES)["k8s_label_cortex.dev/api-name"] == "api"


def test_api_and_kind_come_from_labels_every_api_pod_has() -> None:
    pod_labels = labels("my-api", "realtime-api")
    lifted = {f"k8s_label_{k}" for k in pod_labels}
    assert {"k8s_label_cortex.dev/api-name", "k8s_label_app.kubernetes.io/component"} <= lifted


def test_fluent_bit_values_carry_the_filters() -> None:
    values = addons.fluent_bit_values("us-east-1", "/cortex/c")
    assert values["additionalFilters"] == fluent_bit_filters()


def test_request_ids_are_logged_only_when_harmless() -> None:
    assert request_id_of("0b9d3c52-6c1f-4c4e-9a0e-7f7c3e5a9b11") == "0b9d3c52-6c1f-4c4e-9a0e-7f7c3e5a9b11"
    for bad in (None, "", 'a"b', "a\nb", "x" * 65, "a b", "ünï"):
        assert request_id_of(bad) is None, bad


def _runtime_fields() -> set[str]:
    out = io.StringIO()
    log = AccessLog(out)
    log.record("POST", 500, 0.25, "abc123", "rid-1")
    log.flush()
    (line,) = out.getvalue().splitlines()
    access = json.loads(line)
    assert access["request_id"] == "rid-1" and access["error_id"] == "abc123" and access["latency_ms"] == 250.0
    record = logging.makeLogRecord({"msg": "handle_post raised", "levelname": "ERROR", "name": "cortex", "error_id": "e"})
    error = json.loads(JsonFormatter().format(record))
    return set(access) | set(error)


def test_the_queries_name_only_fields_that_exist() -> None:
    top = {new for _, new in RENAMES} | {"@timestamp"}
    data = _runtime_fields()
    assert {"errors of one API", "slowest requests", "one request id"} == set(LOGS_INSIGHTS_QUERIES)
    for name, query in LOGS_INSIGHTS_QUERIES.items():
        fields = set(re.findall(r"(?<![\w.\"])(@?[a-z_]+(?:\.[a-z_]+)?)(?=\s*(?:[,=<>!]|desc|asc|$))", query, re.M))
        assert len(fields) >= 6, (name, fields)
        for field in fields:
            if field.startswith("data."):
                assert field.removeprefix("data.") in data, (name, field)
            elif field not in {"and", "or", "limit", "desc", "asc"}:
                assert field in top, (name, field)
