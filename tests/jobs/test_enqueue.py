"""Splitting into batches and grouping into SendMessageBatch calls (pure parts of jobs/enqueue.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cortex_iac.jobs.enqueue import MAX_MESSAGE_BYTES, EnqueueError, _groups, enqueue, glob_regex, item_list_bodies
from cortex_iac.jobs.submission import BatchSubmission


@pytest.mark.parametrize(("pattern", "matches", "misses"), [
    ("s3://b/*.json", ["s3://b/a.json"], ["s3://b/x/a.json", "s3://b/a.jsonl"]),
    ("**.json", ["s3://b/x/y/a.json"], ["s3://b/a.csv"]),
    ("s3://b/data/**", ["s3://b/data/x/y"], ["s3://b/other/x"]),
    ("s3://b/part-?.csv", ["s3://b/part-1.csv"], ["s3://b/part-10.csv", "s3://b/part-/.csv"]),
    ("s3://b/[!a]*", ["s3://b/b1"], ["s3://b/a1"]),
    ("s3://b/*.{csv,tsv}", ["s3://b/x.csv", "s3://b/x.tsv"], ["s3://b/x.json"]),
    ("s3://b/a+b(1).txt", ["s3://b/a+b(1).txt"], ["s3://b/aab1.txt"]),
])
def test_globs_use_slash_as_separator(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = glob_regex(pattern)
    assert all(regex.fullmatch(m) for m in matches)
    assert not any(regex.fullmatch(m) for m in misses)


def test_bad_globs_are_errors() -> None:
    with pytest.raises(EnqueueError, match="'\\[' without"):
        glob_regex("s3://b/[abc")
    with pytest.raises(EnqueueError, match="without '}'"):
        glob_regex("s3://b/{a,b")


def test_item_list_batches_and_size_limit() -> None:
    sub = BatchSubmission.model_validate({"workers": 1, "item_list": {"items": list(range(1000)), "batch_size": 7}})
    bodies = item_list_bodies(sub)
    assert len(bodies) == 143 and json.loads(bodies[-1]) == list(range(994, 1000))
    big = BatchSubmission.model_validate({"workers": 1, "item_list": {"items": ["x" * 200_000] * 2, "batch_size": 2}})
    with pytest.raises(EnqueueError, match="item_list.batch_size: batch 0 is 400007 bytes"):
        item_list_bodies(big)


def test_groups_hold_at_most_10_entries_and_256_kib() -> None:
    small = [_body(10)] * 25
    assert [len(g) for g in _groups(small)] == [10, 10, 5]
    large = [_body(100_000)] * 5  # two fit under 256 KiB, three do not
    groups = list(_groups(large))
    assert [len(g) for g in groups] == [2, 2, 1]
    assert all(sum(len(e["MessageBody"]) for e in g) <= MAX_MESSAGE_BYTES for g in groups)
    entry = groups[1][0]
    assert entry["Id"] == entry["MessageGroupId"] == entry["MessageDeduplicationId"] == "2"
    assert entry["MessageAttributes"]["batch_index"] == {"DataType": "Number", "StringValue": "2"}


def _body(size: int) -> str:
    return json.dumps(["x" * size])


class FlakySqs:
    """Refuses each entry once (SendMessageBatch's partial failure), records what it takes."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.refused: set[str] = set()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        failed = [e for e in Entries if e["Id"] not in self.refused]
        self.refused |= {e["Id"] for e in failed}
        self.taken += [e["MessageBody"] for e in Entries if e not in failed]
        return {"Failed": [{"Id": e["Id"]} for e in failed]}


def test_enqueue_retries_refused_entries_and_stops_when_told() -> None:
    sqs = FlakySqs()
    bodies = [json.dumps([i]) for i in range(35)]
    assert enqueue(sqs, "url", bodies, threads=3, keep_going=lambda sent: None) == 35
    assert sorted(sqs.taken, key=lambda b: json.loads(b)[0]) == bodies

    class Stop(Exception):
        pass

    def stop_after_20(sent: int) -> None:
        if sent >= 20:
            raise Stop

    with pytest.raises(Stop):
        enqueue(FlakySqs(), "url", bodies, threads=1, keep_going=stop_after_20)
