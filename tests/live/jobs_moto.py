"""The job APIs' live tests' view of the shared moto server (tests/live/moto_server.py): the same
server, plus the job table as the infrastructure creates it."""

from __future__ import annotations

from cortex_iac.jobs.contract import TABLE_PARTITION_KEY, TABLE_SORT_KEY
from tests.live.moto_server import REGION, moto_server
from tests.live.moto_server import MotoServer as Moto

__all__ = ["REGION", "Moto", "create_job_table", "moto_server"]


def create_job_table(moto: Moto, name: str) -> None:
    """The job table as the infrastructure creates it (contract key schema, on-demand)."""
    moto.client("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"},
                   {"AttributeName": TABLE_SORT_KEY, "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"},
                              {"AttributeName": TABLE_SORT_KEY, "AttributeType": "S"}],
    )
