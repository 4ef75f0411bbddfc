"""Splitting a BatchAPI submission into batches and sending them to the job's queue.

Cortex's rules (``pkg/enqueuer``): ``item_list`` → ``ceil(len/batch_size)`` messages of JSON arrays;
``file_path_lister`` → arrays of ``"s3://bucket/key"`` strings matched by the include globs and
not by the exclude globs (``/`` separates path segments: ``*`` stays within one, ``**`` crosses);
``delimited_files`` → the JSON values of each matched newline-delimited file, ``batch_size`` per
message. Messages go out with SendMessageBatch (at most 10 entries and 256 KiB a call), several
calls at once; each batch is its own FIFO message group with its index as deduplication id, so a
retried call never enqueues a batch twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from cortex_iac.errors import CortexError
from cortex_iac.jobs.submission import BatchSubmission, FileLister

MAX_MESSAGE_BYTES = 256 * 1024
"""SQS's message size as Cortex knew it (and moto enforces); one batch must fit."""
MAX_ENTRIES = 10
BATCH_INDEX_ATTRIBUTE = "batch_index"
_ATTRIBUTE_BYTES = 64  # what a message's batch_index attribute counts towards the size, at most
_STREAM_CHUNK = 1024 * 1024
MAX_ITEM_BYTES = 250 * 1024


class EnqueueError(CortexError):
    """The submission cannot be split or sent; the message names the field or the S3 object."""


class Stopped(CortexError):  # noqa: N818 - a signal, not a failure
    """The job was stopped (or timed out) while enqueuing."""


def glob_regex(pattern: str) -> re.Pattern[str]:
    """gobwas/glob with separator ``/`` (Cortex's): ``**`` any run, ``*`` and ``?`` within a
    segment, ``[...]`` / ``[!...]`` classes, ``{a,b}`` alternatives."""
    out, i, depth = [], 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                raise EnqueueError(f"glob {pattern!r}: '[' without ']'")
            body = pattern[i + 1:end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end
        elif ch == "{":
            depth += 1
            out.append("(?:")
        elif ch == "}" and depth:
            depth -= 1
            out.append(")")
        elif ch == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(ch))
        i += 1
    if depth:
        raise EnqueueError(f"glob {pattern!r}: '{{' without '}}'")
    try:
        return re.compile("".join(out))
    except re.error as error:
        raise EnqueueError(f"glob {pattern!r}: {error}") from None


def split_s3_path(path: str) -> tuple[str, str]:
    bucket, _, prefix = path.removeprefix("s3://").partition("/")
    return bucket, prefix


def list_files(s3: Any, lister: FileLister) -> Iterator[str]:
    """The ``s3://bucket/key`` paths a lister picks, in S3's order per path."""
    includes = [glob_regex(g) for g in lister.includes]
    excludes = [glob_regex(g) for g in lister.excludes]
    seen: set[str] = set()
    for path in lister.s3_paths:
        bucket, prefix = split_s3_path(path)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                uri = f"s3://{bucket}/{obj['Key']}"
                if obj["Key"].endswith("/") or uri in seen:
                    continue
                if includes and not any(r.fullmatch(uri) for r in includes):
                    continue
                if any(r.fullmatch(uri) for r in excludes):
                    continue
                seen.add(uri)
                yield uri


def delimited_items(s3: Any, uri: str) -> Iterator[Any]:
    """The JSON values of one newline-delimited S3 object, streamed."""
    bucket, key = split_s3_path(uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    decoder = json.JSONDecoder()
    buffer = ""
    line_number = 0
    for raw in body.iter_lines(chunk_size=_STREAM_CHUNK):
        line_number += 1
        buffer = raw.decode("utf-8").strip()
        if not buffer:
            continue
        if len(buffer) > MAX_ITEM_BYTES:
            raise EnqueueError(f"{uri} line {line_number}: an item is larger than {MAX_ITEM_BYTES} bytes")
        try:
            value, end = decoder.raw_decode(buffer)
        except json.JSONDecodeError as error:
            raise EnqueueError(f"{uri} line {line_number}: not JSON ({error.msg})") from None
        if buffer[end:].strip():
            raise EnqueueError(f"{uri} line {line_number}: more than one JSON value on the line")
        yield value


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_batch(index: int, batch: Sequence[Any], field: str) -> str:
    body = json.dumps(batch, separators=(",", ":"))
    if len(body.encode()) + _ATTRIBUTE_BYTES > MAX_MESSAGE_BYTES:
        raise EnqueueError(f"{field}: batch {index} is {len(body.encode())} bytes as JSON; a batch must fit in "
                           f"{MAX_MESSAGE_BYTES - _ATTRIBUTE_BYTES} (lower batch_size)")
    return body


def item_list_bodies(submission: BatchSubmission) -> list[str]:
    """Every batch of an ``item_list``, encoded, checked before anything is sent."""
    assert submission.item_list is not None
    items = submission.item_list
    return [encode_batch(i, b, "item_list.batch_size") for i, b in enumerate(chunks(items.items, items.batch_size))]


def lister_bodies(s3: Any, submission: BatchSubmission) -> Iterator[str]:
    """Batches of a ``file_path_lister`` or ``delimited_files`` submission, lazily."""
    if submission.file_path_lister is not None:
        source: Iterable[Any] = list_files(s3, submission.file_path_lister)
        lister, field = submission.file_path_lister, "file_path_lister.batch_size"
    else:
        assert submission.delimited_files is not None
        lister, field = submission.delimited_files, "delimited_files.batch_size"
        source = (item for uri in list_files(s3, lister) for item in delimited_items(s3, uri))
    for i, batch in enumerate(chunks(source, lister.batch_size)):
        yield encode_batch(i, batch, field)


def _groups(bodies: Iterable[str]) -> Iterator[list[dict[str, Any]]]:
    """SendMessageBatch requests: up to 10 entries and 256 KiB each."""
    entries: list[dict[str, Any]] = []
    size = 0
    for index, body in enumerate(bodies):
        length = len(body.encode()) + _ATTRIBUTE_BYTES
        if entries and (len(entries) == MAX_ENTRIES or size + length > MAX_MESSAGE_BYTES):
            yield entries
            entries, size = [], 0
        entries.append({
            "Id": str(index), "MessageBody": body, "MessageGroupId": str(index), "MessageDeduplicationId": str(index),
            "MessageAttributes": {BATCH_INDEX_ATTRIBUTE: {"DataType": "Number", "StringValue": str(index)}},
        })
        size += length
    if entries:
        yield entries


def send(sqs: Any, queue_url: str, entries: list[dict[str, Any]], attempts: int = 3) -> None:
    """One SendMessageBatch, retrying the entries SQS did not take (deduplication makes it safe)."""
    pending = entries
    for _ in range(attempts):
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=pending)
        failed = {f["Id"] for f in response.get("Failed", [])}
        if not failed:
            return
        pending = [e for e in pending if e["Id"] in failed]
    raise EnqueueError(f"SQS refused {len(pending)} batches after {attempts} attempts")


def enqueue(sqs: Any, queue_url: str, bodies: Iterable[str], *, threads: int,
            keep_going: Callable[[int], None]) -> int:
    """Send every batch; returns how many. ``keep_going(sent_so_far)`` is called between requests
    and raises ``Stopped`` to end early (the job was stopped) or refreshes the heartbeat."""
    sent = 0
    in_flight: set[Future[None]] = set()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="enqueue") as pool:
        for group in _groups(bodies):
            while len(in_flight) >= threads * 2:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
            keep_going(sent)
            in_flight.add(pool.submit(send, sqs, queue_url, group))
            sent += len(group)
        for future in wait(in_flight).done:
            future.result()
    return sent
