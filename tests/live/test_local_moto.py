"""The local AWS (cortex_iac/local_moto.py): moto's server with each DynamoDB operation atomic.

A BatchAPI's workers count batches with concurrent ``TransactWriteItems`` (a ledger put and a counter
``ADD``); against plain moto a count was sometimes lost under load (its backend is not thread-safe).
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from tests.live.moto_server import moto_server

pytestmark = pytest.mark.live

THREADS, WRITES = 8, 40


def test_concurrent_transactions_and_counter_adds_lose_nothing(tmp_path: Path) -> None:
    with moto_server(tmp_path) as moto:
        db = moto.client("dynamodb")
        db.create_table(TableName="jobs", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        job = {"pk": {"S": "job"}, "sk": {"S": "job"}}
        db.put_item(TableName="jobs", Item={**job, "n": {"N": "0"}})

        def writer(thread: int) -> None:
            client = moto.client("dynamodb")
            for i in range(WRITES):
                client.transact_write_items(TransactItems=[
                    {"Put": {"TableName": "jobs", "Item": {"pk": {"S": "job"}, "sk": {"S": f"batch-{thread}-{i}"}},
                             "ConditionExpression": "attribute_not_exists(sk)"}},
                    {"Update": {"TableName": "jobs", "Key": job, "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                ])
                client.update_item(TableName="jobs", Key=job, UpdateExpression="ADD n :one",
                                   ExpressionAttributeValues={":one": {"N": "1"}})

        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(writer, range(THREADS)))
        item = db.get_item(TableName="jobs", Key=job, ConsistentRead=True)["Item"]
        assert int(item["n"]["N"]) == 2 * THREADS * WRITES
        batches = db.query(TableName="jobs", KeyConditionExpression="pk = :p AND begins_with(sk, :b)",
                           ExpressionAttributeValues={":p": {"S": "job"}, ":b": {"S": "batch-"}}, Select="COUNT")
        assert batches["Count"] == THREADS * WRITES
