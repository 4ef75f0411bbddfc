"""Container logs in CloudWatch, searchable by API: the Fluent Bit filters and the first queries.

aws-for-fluent-bit's ``kubernetes`` filter already parses a JSON log line (``Merge_Log``) into the
record's ``data`` map (the chart's ``mergeLogKey``) and adds the pod's metadata under
``kubernetes``. The filters here lift what a person filters on to top-level fields, with the stock
``nest`` and ``modify`` plugins (no script):

- ``api``: the pod's ``cortex.dev/api-name`` label (every API pod has it, render/workload.py);
- ``kind``: its ``app.kubernetes.io/component`` label (``realtime-api``, ... : the API's kind);
- ``pod``, ``namespace``, ``container``; the other labels become ``k8s_label_<name>`` fields.

The serving runtime writes one JSON object per line (cortex_iac/serving/logs.py): access lines
(``logger: cortex.access``, ``status``, ``latency_ms``, ``request_id``: Envoy's ``x-request-id``,
``error_id`` on a 500) and log lines (``level``, ``message``, ``error_id``, ``traceback``), so in
Logs Insights they are ``data.status``, ``data.latency_ms``, ...
"""

from __future__ import annotations

from cortex_iac.render.envoy import API_NAME_LABEL

_MATCH = "kube.*"  # the chart's input tag
_COMPONENT_LABEL = "app.kubernetes.io/component"
# Fields made top-level, by the name the kubernetes filter gives them once lifted.
RENAMES = (
    (f"k8s_label_{API_NAME_LABEL}", "api"),
    (f"k8s_label_{_COMPONENT_LABEL}", "kind"),
    ("k8s_pod_name", "pod"),
    ("k8s_namespace_name", "namespace"),
    ("k8s_container_name", "container"),
)


def fluent_bit_filters() -> str:
    """The chart's ``additionalFilters``: Fluent Bit ``[FILTER]`` sections run after its
    ``kubernetes`` filter, on every container's records."""
    sections = [
        [("Name", "nest"), ("Match", _MATCH), ("Operation", "lift"), ("Nested_under", "kubernetes"),
         ("Add_prefix", "k8s_")],
        [("Name", "nest"), ("Match", _MATCH), ("Operation", "lift"), ("Nested_under", "k8s_labels"),
         ("Add_prefix", "k8s_label_")],
        [("Name", "modify"), ("Match", _MATCH), *(("Rename", f"{old} {new}") for old, new in RENAMES)],
    ]
    return "\n".join("[FILTER]\n" + "\n".join(f"    {key:<13}{value}" for key, value in section)
                     for section in sections) + "\n"


# The three queries a person needs first (docs/observability.md shows them), for the log group
# /cortex/<cluster>; MY_API and REQUEST_ID are to be replaced.
LOGS_INSIGHTS_QUERIES = {
    "errors of one API": (
        "fields @timestamp, pod, data.level, data.status, data.message, data.error_id\n"
        "| filter api = \"MY_API\" and (data.level = \"error\" or data.status >= 500)\n"
        "| sort @timestamp desc\n"
        "| limit 100"
    ),
    "slowest requests": (
        "fields @timestamp, api, pod, data.status, data.latency_ms, data.request_id\n"
        "| filter data.logger = \"cortex.access\"\n"
        "| sort data.latency_ms desc\n"
        "| limit 50"
    ),
    "one request id": (
        "fields @timestamp, api, pod, data.logger, data.status, data.latency_ms, data.error_id, data.message\n"
        "| filter data.request_id = \"REQUEST_ID\"\n"
        "| sort @timestamp asc"
    ),
}
