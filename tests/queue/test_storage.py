"""The store's outcome rules, against moto's in-process S3: the first result wins, a marker is always
written, an expired result reads as unknown."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from moto import mock_aws

from cortex_iac.queue import contract
from cortex_iac.queue.storage import Store, s3_client

RID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = s3_client(2)
        s3.create_bucket(Bucket="results")
        yield Store(s3, "results", "workloads/api/")


def test_the_first_result_wins_and_a_duplicate_does_not_overwrite_it(store: Store) -> None:
    assert store.record_completed(RID, b'{"n": 1}') is True
    assert store.record_completed(RID, b'{"n": 2}') is False
    outcome = store.outcome(RID)
    assert outcome is not None and outcome.status == "completed"
    assert json.loads(outcome.result["Body"].read()) == {"n": 1}
    # A failure recorded later (a duplicate that timed out) does not hide the result.
    store.record_failed(RID, "the container did not answer")
    outcome = store.outcome(RID)
    assert outcome is not None and outcome.status == "completed"


def test_a_result_without_its_marker_gets_the_marker(store: Store) -> None:
    # The worker that stored the result died before the marker: the next one writes the marker.
    store.put(contract.result_key(store.prefix, RID), b"[1]", "application/json")
    assert store.terminal(RID) is None
    assert store.record_completed(RID, b"[2]") is False
    assert store.terminal(RID) == "completed"


def test_failed_carries_its_reason_and_an_expired_result_is_unknown(store: Store) -> None:
    store.record_failed(RID, "the container answered 500: boom")
    outcome = store.outcome(RID)
    assert outcome is not None and (outcome.status, outcome.reason) == ("failed", "the container answered 500: boom")
    other = "1f8fad5b-d9cb-469f-a165-70867728950e"
    store.put_marker(other, "completed")  # its result.json expired first
    assert store.outcome(other) is None
    assert store.outcome("2f8fad5b-d9cb-469f-a165-70867728950e") is None
