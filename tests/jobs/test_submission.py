"""Job submissions: Cortex's shapes, unknown keys refused, no coercion, every problem naming its field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cortex_iac.jobs.submission import BatchSubmission, SubmissionError, TaskSubmission, parse

ITEMS = {"items": [1, 2, 3], "batch_size": 2}
LISTER = {"s3_paths": ["s3://bucket/data/"], "includes": ["**.json"], "batch_size": 5}


def problems(model: Any, body: Any) -> list[str]:
    with pytest.raises(SubmissionError) as error:
        parse(model, body if isinstance(body, bytes) else json.dumps(body).encode())
    return error.value.problems


def test_cortex_submissions_parse() -> None:
    dlq = {"arn": "arn:aws:sqs:us-west-2:123456789012:failed.fifo", "max_receive_count": 3}
    batch = parse(BatchSubmission, json.dumps({"workers": 2, "item_list": ITEMS, "config": {"a": 1}, "timeout": 60,
                                               "sqs_dead_letter_queue": dlq}).encode())
    assert batch.workers == 2 and batch.item_list is not None and batch.item_list.batch_size == 2
    assert batch.sqs_dead_letter_queue is not None and batch.sqs_dead_letter_queue.max_receive_count == 3
    lister = parse(BatchSubmission, json.dumps({"workers": 1, "delimited_files": LISTER}).encode())
    assert lister.lister is not None and lister.lister.excludes == []
    assert parse(TaskSubmission, b"{}").workers == 1


@pytest.mark.parametrize(("body", "expected"), [
    (b"{", ["body: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"]),
    ([1], ["body: must be a JSON object, not list"]),
    ({"item_list": ITEMS}, ["workers: Field required"]),
    ({"workers": 0, "item_list": ITEMS}, ["workers: Input should be greater than or equal to 1"]),
    ({"workers": True, "item_list": ITEMS}, ["workers: Input should be a valid integer"]),
    ({"workers": 1}, ["item_list | file_path_lister | delimited_files: exactly one is required (got none)"]),
    ({"workers": 1, "item_list": ITEMS, "delimited_files": LISTER},
     ["item_list | file_path_lister | delimited_files: exactly one is required (got item_list, delimited_files)"]),
    ({"workers": 1, "item_list": {"items": [], "batch_size": 1}},
     ["item_list.items: List should have at least 1 item after validation, not 0"]),
    ({"workers": 1, "file_path_lister": {**LISTER, "s3_paths": ["bucket/data"]}},
     ["file_path_lister.s3_paths[0]: 'bucket/data' is not an S3 path such as s3://bucket/prefix"]),
    ({"workers": 1, "item_list": ITEMS, "sqs_dead_letter_queue": {"arn": "queue", "max_receive_count": 0}},
     ["sqs_dead_letter_queue.arn: 'queue' is not an SQS queue ARN (arn:aws:sqs:<region>:<account id>:<queue name>)",
      "sqs_dead_letter_queue.max_receive_count: Input should be greater than or equal to 1"]),
    ({"workers": 1, "item_list": ITEMS, "timeout": "60"}, ["timeout: Input should be a valid integer"]),
    ({"workers": 1, "item_list": ITEMS, "node_groups": ["gpu"]},
     ["node_groups: unknown key (allowed: workers, item_list, file_path_lister, delimited_files, config, timeout, "
      "sqs_dead_letter_queue)"]),
    ({"workers": 1, "item_list": {**ITEMS, "batchsize": 3}}, ["item_list.batchsize: unknown key (allowed: items, batch_size)"]),
])
def test_bad_batch_submissions_name_the_field(body: Any, expected: list[str]) -> None:
    assert problems(BatchSubmission, body) == expected


def test_bad_task_submissions_name_the_field() -> None:
    assert problems(TaskSubmission, {"workers": 2}) == ["workers: Input should be less than or equal to 1"]
    assert problems(TaskSubmission, {"command": ["x"]}) == ["command: unknown key (allowed: config, timeout, workers)"]
