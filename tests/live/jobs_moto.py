"""A real moto server on 127.0.0.1 for the job APIs' live tests (SQS, DynamoDB, S3), and clients."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from cortex_iac.jobs.contract import TABLE_PARTITION_KEY, TABLE_SORT_KEY
from tests.live.procs import free_port, running

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION}


@dataclass(frozen=True)
class Moto:
    url: str
    port: int

    def env(self) -> dict[str, str]:
        """What a process needs to talk to this server (credentials are moto's dummies)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.url}

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


def moto_command(port: int) -> list[str]:
    binary = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    assert binary, "moto_server not installed (pip install 'moto[server]')"
    return [binary, "-H", "127.0.0.1", "-p", str(port)]


@contextlib.contextmanager
def moto_server(tmp: Path) -> Iterator[Moto]:
    """moto on a free port until the block ends (killed even when the test fails)."""
    port = free_port()
    with running(moto_command(port), ports=[port], log=tmp / f"moto-{port}.log", timeout=30.0):
        yield Moto(url=f"http://127.0.0.1:{port}", port=port)


def create_job_table(moto: Moto, name: str) -> None:
    """The job table as the infrastructure creates it (contract key schema, on-demand)."""
    moto.client("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"},
                   {"AttributeName": TABLE_SORT_KEY, "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"},
                              {"AttributeName": TABLE_SORT_KEY, "AttributeType": "S"}],
    )


