"""The DynamoDB job table: one job record per job and one outcome record per batch (the ledger that
makes ``succeeded`` / ``failed`` exact however often SQS delivers a batch).

Status transitions and the claim of ``on_job_complete`` are conditional writes, so two gateway
replicas, a gateway and a worker, or several workers never both win.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from cortex_iac.jobs.contract import JOB_ITEM_SORT_KEY, TABLE_PARTITION_KEY, TABLE_SORT_KEY, Attr, batch_sort_key

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        out[k] = _serializer.serialize(Decimal(str(v)) if isinstance(v, float) else v)
    return out


def _decode(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def _conditional_failed(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = error.response.get("CancellationReasons", [])
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
    return False


class JobStore:
    """The job table of one API. ``client`` is a boto3 DynamoDB client."""

    def __init__(self, client: Any, table: str, retention_seconds: int) -> None:
        self._db = client
        self._table = table
        self._retention = retention_seconds

    def _key(self, job_id: str, sort_key: str = JOB_ITEM_SORT_KEY) -> dict[str, Any]:
        return {TABLE_PARTITION_KEY: {"S": job_id}, TABLE_SORT_KEY: {"S": sort_key}}

    def expires_at(self) -> int:
        return int(time.time()) + self._retention

    def create(self, job_id: str, record: Mapping[str, Any]) -> bool:
        """Write a new job record; False if the job id exists already."""
        item = {**self._key(job_id), **_encode({**record, Attr.EXPIRES_AT: self.expires_at()})}
        try:
            self._db.put_item(TableName=self._table, Item=item,
                              ConditionExpression=f"attribute_not_exists({TABLE_PARTITION_KEY})")
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job record (strongly consistent), or None."""
        item = self._db.get_item(TableName=self._table, Key=self._key(job_id), ConsistentRead=True).get("Item")
        return None if item is None else _decode(item)

    def update(self, job_id: str, values: Mapping[str, Any], *, from_statuses: Iterable[str] | None = None,
               unclaimed: bool = False) -> bool:
        """SET ``values`` on the job record; with ``from_statuses`` only while the status is one of
        them, with ``unclaimed`` only while nobody claimed ``on_job_complete``. False when the
        condition did not hold (someone else moved the job on)."""
        names = {f"#a{i}": name for i, name in enumerate(values)}
        vals = {f":v{i}": v for i, v in enumerate(values.values())}
        expression = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values)))
        conditions = [f"attribute_exists({TABLE_PARTITION_KEY})"]
        if from_statuses is not None:
            statuses = list(from_statuses)
            names["#status"] = Attr.STATUS
            for i, status in enumerate(statuses):
                vals[f":s{i}"] = status
            conditions.append("#status IN (" + ", ".join(f":s{i}" for i in range(len(statuses))) + ")")
        if unclaimed:
            names["#claim"] = Attr.ON_JOB_COMPLETE_BY
            conditions.append("attribute_not_exists(#claim)")
        try:
            self._db.update_item(
                TableName=self._table, Key=self._key(job_id), UpdateExpression=expression,
                ConditionExpression=" AND ".join(conditions), ExpressionAttributeNames=names,
                ExpressionAttributeValues=_encode(vals),
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def record_batch(self, job_id: str, index: int, outcome: str, milliseconds: int) -> bool:
        """Count batch ``index`` once: its ledger record and the job's counter in one transaction.
        False when it was counted before (a redelivery)."""
        counter = Attr.SUCCEEDED if outcome == "succeeded" else Attr.FAILED
        add = "ADD #n :one" + (", #t :ms" if outcome == "succeeded" else "")
        names = {"#n": counter, **({"#t": Attr.TIME_SUM_MS} if outcome == "succeeded" else {})}
        values: dict[str, Any] = {":one": 1, **({":ms": milliseconds} if outcome == "succeeded" else {})}
        ledger = {**self._key(job_id, batch_sort_key(index)),
                  **_encode({Attr.OUTCOME: outcome, Attr.EXPIRES_AT: self.expires_at()})}
        try:
            self._db.transact_write_items(TransactItems=[
                {"Put": {"TableName": self._table, "Item": ledger,
                         "ConditionExpression": f"attribute_not_exists({TABLE_SORT_KEY})"}},
                {"Update": {"TableName": self._table, "Key": self._key(job_id), "UpdateExpression": add,
                            "ExpressionAttributeNames": names, "ExpressionAttributeValues": _encode(values)}},
            ])
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def status_and_batch(self, job_id: str, index: int) -> tuple[str | None, bool]:
        """The job's status and whether batch ``index`` is already counted, in one round trip."""
        keys = [self._key(job_id), self._key(job_id, batch_sort_key(index))]
        response = self._db.batch_get_item(RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}})
        items = [_decode(i) for i in response.get("Responses", {}).get(self._table, [])]
        unprocessed = response.get("UnprocessedKeys", {})
        if unprocessed:  # throttled: ask again one by one rather than guess
            job = self.get(job_id)
            batch = self._db.get_item(TableName=self._table, Key=keys[1], ConsistentRead=True).get("Item")
            return (job or {}).get(Attr.STATUS), batch is not None
        status = next((i.get(Attr.STATUS) for i in items if i[TABLE_SORT_KEY] == JOB_ITEM_SORT_KEY), None)
        counted = any(i[TABLE_SORT_KEY] != JOB_ITEM_SORT_KEY for i in items)
        return status, counted
