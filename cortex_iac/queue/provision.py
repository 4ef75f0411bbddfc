"""The AWS side of one AsyncAPI on a local endpoint (a moto server): what ``cortex serve`` and the
live tests create, with the same attributes the ``cortex:api:AsyncApi`` component gives the real ones
(a standard queue with a redrive policy to its DLQ at ``max_attempts``, the visibility timeout, a
bucket). Not used against AWS: the stack creates those resources there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LocalResources:
    queue_url: str
    dead_letter_queue_url: str
    bucket: str


def create_resources(sqs: Any, s3: Any, api_name: str, *, bucket: str, visibility_timeout: int,
                     max_attempts: int) -> LocalResources:
    """Create (or find, the calls are idempotent) the API's DLQ, queue and the bucket."""
    dlq_url = sqs.create_queue(QueueName=f"{api_name}-dead-letter")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=api_name, Attributes={
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_attempts)}),
    })["QueueUrl"]
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    return LocalResources(queue_url=queue_url, dead_letter_queue_url=dlq_url, bucket=bucket)
