"""Structured logs: one JSON object per line on stdout.

Per-request lines are the hot path, so they are not formatted when the request ends: the request
appends a tuple to a buffer and ``AccessLog.flush`` (called every fraction of a second and at shutdown)
turns the buffer into lines with one write.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import IO, Any

# Attributes every LogRecord has (and uvicorn's ANSI-coloured copy of its message); anything else on a
# record came from ``extra=`` and is logged as a field.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, extra fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a single-line JSON object."""
        line: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS:
                line[key] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    """Send every logger (ours, uvicorn's, the handler's) through one JSON handler on ``stream``.

    ``level`` is a name such as ``"info"``; ``stream`` defaults to stdout.
    """
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class AccessLog:
    """Buffers one record per request and writes them as JSON lines on ``flush``.

    ``stream`` defaults to stdout, looked up at flush time so redirections made later are honoured.
    """

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool = True) -> None:
        self._stream = stream
        self._enabled = enabled
        self._pending: list[tuple[float, str, int, float, str | None, str | None]] = []

    def record(self, method: str, status: int, latency: float, error_id: str | None = None,
               request_id: str | None = None) -> None:
        """Remember one finished request: wall-clock time, method, status, latency in seconds, the
        id of its logged error and its request id (:func:`request_id_of`); nothing when the log is
        not ``enabled`` (a log level above info)."""
        if self._enabled:
            self._pending.append((time.time(), method, status, latency, error_id, request_id))

    def flush(self) -> None:
        """Write every buffered record as one line each, then empty the buffer.

        Each line is exactly what ``json.dumps`` writes for its fields (tested), built from a
        template: formatting hundreds of lines a second was a tenth of the runtime's CPU.
        """
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        stream = self._stream or sys.stdout
        stream.write("".join(_access_lines(pending)))
        stream.flush()


def _access_lines(records: list[tuple[float, str, int, float, str | None, str | None]]) -> list[str]:
    lines = []
    second, stamp = -1, ""
    for created, method, status, latency, error_id, request_id in records:
        whole = int(created)
        if whole != second:  # time.strftime once per second of records, not once per line
            second, stamp = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        # The method is one of the tokens the HTTP parser accepts and ids match _REQUEST_ID (error ids
        # are hex), so they rarely need JSON escaping (_quoted checks); a finite float's repr is its JSON.
        line = (f'{{"time": "{stamp}.{int(created % 1 * 1000):03d}Z", "level": "info", "logger": "cortex.access", '
                f'"method": {_quoted(method)}, "path": "/", "status": {status}, '
                f'"latency_ms": {round(latency * 1000, 3)!r}')
        if error_id is not None:
            line += f', "error_id": {_quoted(error_id)}'
        if request_id is not None:
            line += f', "request_id": {_quoted(request_id)}'
        lines.append(line + "}\n")
    return lines


def _quoted(text: str) -> str:
    # JSON string of text that needs no escape; anything else goes through json.dumps.
    if _PLAIN.fullmatch(text):
        return f'"{text}"'
    return json.dumps(text)


# Characters a JSON string holds as they are, and that are harmless in a log line.
_SAFE = r"[A-Za-z0-9._\-]"
_PLAIN = re.compile(_SAFE + "*")


# What a request id may be to be logged: Envoy's are UUIDs; a client's own (Envoy passes them on) is
# logged only if it is as harmless (no quotes, newlines or control characters, at most 64 characters).
_REQUEST_ID = re.compile(_SAFE + "{1,64}")


def request_id_of(header: str | None) -> str | None:
    """The ``x-request-id`` header's value if it is safe to log (see :data:`_REQUEST_ID`), else None."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return None
