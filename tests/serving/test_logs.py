"""JSON log lines: the formatter and the buffered access log."""

from __future__ import annotations

import io
import json
import logging
import sys

from cortex_iac.serving.logs import AccessLog, JsonFormatter


def test_formatter_writes_one_json_line_with_extras_and_traceback() -> None:
    logger = logging.getLogger("test.serving.logs")
    try:
        raise ValueError("bad")
    except ValueError:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info(), extra={"error_id": "abc"}
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert (parsed["level"], parsed["logger"], parsed["message"], parsed["error_id"]) == (
        "error", "test.serving.logs", "failed here", "abc"
    )
    assert parsed["traceback"].endswith("ValueError: bad")
    assert parsed["time"].endswith("Z")


def test_access_log_writes_buffered_records_on_flush() -> None:
    stream = io.StringIO()
    access = AccessLog(stream)
    access.record("POST", 200, 0.0012345)
    access.record("GET", 500, 0.5, "e1")
    assert stream.getvalue() == ""
    access.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["method"], r["status"], r["latency_ms"], r.get("error_id")) for r in lines] == [
        ("POST", 200, 1.234, None), ("GET", 500, 500.0, "e1")
    ]
    access.flush()
    assert len(stream.getvalue().splitlines()) == 2


def test_access_lines_follow_the_log_level() -> None:
    import io

    from cortex_iac.runtime_contract import RuntimeConfig
    from cortex_iac.serving.app import Runtime

    stream = io.StringIO()
    quiet = AccessLog(stream, enabled=False)
    quiet.record("POST", 200, 0.001)
    quiet.flush()
    assert stream.getvalue() == ""
    assert Runtime(RuntimeConfig(handler_path="h.py", log_level="warning")).access_log._enabled is False
    assert Runtime(RuntimeConfig(handler_path="h.py", log_level="info")).access_log._enabled is True


def test_access_lines_are_exactly_what_json_dumps_writes() -> None:
    import random

    from cortex_iac.serving.logs import _access_lines, _timestamp

    def access_line(created: float, method: str, status: int, latency: float, error_id: str | None,
                    request_id: str | None) -> str:
        # The reference: json.dumps of the fields, as the runtime wrote them before the template.
        line: dict[str, object] = {"time": _timestamp(created), "level": "info", "logger": "cortex.access",
                                   "method": method, "path": "/", "status": status,
                                   "latency_ms": round(latency * 1000, 3)}
        if error_id is not None:
            line["error_id"] = error_id
        if request_id is not None:
            line["request_id"] = request_id
        return json.dumps(line)

    rng = random.Random(7)
    records = []
    for _ in range(2000):
        created = 1764547200 + rng.random() * 5  # several seconds, so the per-second stamp changes
        method = rng.choice(["GET", "POST", "HEAD", 'PO"ST', "ÄÖ"])
        ids = [None, "0123456789abcdef", "req-1.2_3", 'x"y', "\u00e9\n"]
        records.append((created, method, rng.choice([200, 400, 499, 500, 503]), rng.random() * rng.choice([1e-4, 1, 100]),
                        rng.choice(ids), rng.choice(ids)))
    assert _access_lines(records) == [access_line(*r) + "\n" for r in records]
