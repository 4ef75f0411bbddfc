"""The S3 and SQS calls of the gateway and the worker, over the key layout of :mod:`.contract`.

One boto3 client per service and process (boto3 clients are thread-safe), with short connect and
read timeouts and two attempts, so an unreachable endpoint turns into :class:`BackendUnavailable`
within seconds instead of a hung request. Region, endpoint and credentials come from the AWS SDK's
own environment (``AWS_REGION``, ``AWS_ENDPOINT_URL``, Pod Identity).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cortex_iac.queue import contract
from cortex_iac.queue.contract import Status


class BackendUnavailable(Exception):  # noqa: N818 - the name says what the client is told
    """An S3 or SQS call failed (unreachable, timed out, throttled, refused): answer 503, retry later."""

    def __init__(self, call: str, error: Exception) -> None:
        if isinstance(error, ClientError):
            detail = error.response.get("Error", {}).get("Code", "error")
        else:
            detail = type(error).__name__
        super().__init__(f"{call} failed ({detail})")
        self.call = call


def client_config(max_connections: int, read_timeout: float = 10.0) -> Config:
    return Config(
        connect_timeout=2,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": 2},
        max_pool_connections=max_connections,
        # Only send checksums where S3 requires them: the payload streams in parts already measured.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _region() -> str | None:
    # botocore itself reads only AWS_DEFAULT_REGION; AWS_REGION is what the other SDKs (and EKS) set.
    return os.environ.get("AWS_REGION") or None


def s3_client(max_connections: int) -> Any:
    return boto3.session.Session().client("s3", region_name=_region(), config=client_config(max_connections))


def sqs_client(max_connections: int, read_timeout: float = 10.0) -> Any:
    return boto3.session.Session().client("sqs", region_name=_region(),
                                          config=client_config(max_connections, read_timeout))


def _call(call: str, fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except (BotoCoreError, ClientError) as error:
        raise BackendUnavailable(call, error) from error


@dataclass(frozen=True)
class Outcome:
    """A request's status, with its result object (streamed) or failure reason."""

    status: Status
    result: Any = None  # the result.json GetObject response ("Body", "LastModified") when completed
    reason: str | None = None


class Store:
    """One API's objects in the bucket (``bucket``/``prefix``)."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix

    # -- writes --
    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream",
            *, only_if_absent: bool = False) -> bool:
        """Put one object; with ``only_if_absent`` an existing one wins and False is returned."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": body, "ContentType": content_type}
        if only_if_absent:
            kwargs["IfNoneMatch"] = "*"
        try:
            self.s3.put_object(**kwargs)
        except ClientError as error:
            if only_if_absent and error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise BackendUnavailable("S3 PutObject", error) from error
        except BotoCoreError as error:
            raise BackendUnavailable("S3 PutObject", error) from error
        return True

    def put_marker(self, request_id: str, status: Status) -> None:
        self.put(contract.status_key(self.prefix, request_id, status), b"", "text/plain")

    def put_headers(self, request_id: str, headers: list[tuple[str, str]]) -> None:
        body = json.dumps(headers, separators=(",", ":")).encode()
        self.put(contract.headers_key(self.prefix, request_id), body, "application/json")

    def record_completed(self, request_id: str, result: bytes) -> bool:
        """Store the result, then the ``completed`` marker; False if another worker stored a result first
        (the conditional put: a duplicate delivery never overwrites an outcome). The marker is written
        either way, for a worker that died between the two puts."""
        stored = self.put(contract.result_key(self.prefix, request_id), result, "application/json",
                          only_if_absent=True)
        self.put_marker(request_id, "completed")
        return stored

    def record_failed(self, request_id: str, reason: str) -> bool:
        """Store the reason, then the ``failed`` marker; False if a reason was stored first. (A result
        stored by another worker still wins: ``completed`` comes first in the status priority.)"""
        body = json.dumps({"reason": reason}).encode()
        stored = self.put(contract.failure_key(self.prefix, request_id), body, "application/json", only_if_absent=True)
        self.put_marker(request_id, "failed")
        return stored

    def delete_inputs(self, request_id: str) -> None:
        """Delete the payload and headers once the outcome is stored (best effort: the lifecycle rule
        removes whatever is left)."""
        keys = [contract.payload_key(self.prefix, request_id), contract.headers_key(self.prefix, request_id)]
        for key in keys:
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=key)
            except (BotoCoreError, ClientError):
                pass

    # -- reads --
    def markers(self, request_id: str) -> set[str]:
        prefix = contract.status_prefix(self.prefix, request_id)
        answer = _call("S3 ListObjectsV2", self.s3.list_objects_v2, Bucket=self.bucket, Prefix=prefix, MaxKeys=10)
        return {item["Key"][len(prefix):] for item in answer.get("Contents", [])}

    def terminal(self, request_id: str) -> Status | None:
        status = contract.resolve_status(self.markers(request_id))
        return status if status in ("completed", "failed") else None

    def outcome(self, request_id: str) -> Outcome | None:
        """The request's status (None: unknown id), with the result stream or the failure reason."""
        status = contract.resolve_status(self.markers(request_id))
        if status is None:
            return None
        if status == "completed":
            try:
                result = self.s3.get_object(Bucket=self.bucket, Key=contract.result_key(self.prefix, request_id))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None  # expired by the retention rule a moment before its marker
                raise BackendUnavailable("S3 GetObject", error) from error
            except BotoCoreError as error:
                raise BackendUnavailable("S3 GetObject", error) from error
            return Outcome(status, result=result)
        if status == "failed":
            answer = _call("S3 GetObject", self.s3.get_object, Bucket=self.bucket,
                           Key=contract.failure_key(self.prefix, request_id))
            try:
                reason = str(json.loads(answer["Body"].read(64 * 1024))["reason"])
            except (ValueError, KeyError, TypeError):
                reason = "unknown"
            return Outcome(status, reason=reason)
        return Outcome(status)

    def get_payload(self, request_id: str) -> Any | None:
        """The payload's GetObject response (``Body`` streams, ``ContentLength``), None if it is gone."""
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=contract.payload_key(self.prefix, request_id))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise BackendUnavailable("S3 GetObject", error) from error
        except BotoCoreError as error:
            raise BackendUnavailable("S3 GetObject", error) from error

    def get_headers(self, request_id: str) -> list[tuple[str, str]]:
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=contract.headers_key(self.prefix, request_id))
            pairs = json.loads(answer["Body"].read())
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return []
            raise BackendUnavailable("S3 GetObject", error) from error
        except BotoCoreError as error:
            raise BackendUnavailable("S3 GetObject", error) from error
        return [(str(k), str(v)) for k, v in pairs]


class MultipartUpload:
    """A payload written in parts: nothing holds more than one part. ``abort`` removes a partial one."""

    def __init__(self, store: Store, key: str, content_type: str) -> None:
        self.store, self.key, self.content_type = store, key, content_type
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def upload_part(self, data: bytes) -> None:
        s3 = self.store.s3
        if self.upload_id is None:
            answer = _call("S3 CreateMultipartUpload", s3.create_multipart_upload, Bucket=self.store.bucket,
                           Key=self.key, ContentType=self.content_type)
            self.upload_id = answer["UploadId"]
        number = len(self.parts) + 1
        answer = _call("S3 UploadPart", s3.upload_part, Bucket=self.store.bucket, Key=self.key,
                       UploadId=self.upload_id, PartNumber=number, Body=data)
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete(self) -> None:
        _call("S3 CompleteMultipartUpload", self.store.s3.complete_multipart_upload, Bucket=self.store.bucket,
              Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts})

    def abort(self) -> None:
        if self.upload_id is None:
            return
        try:
            self.store.s3.abort_multipart_upload(Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id)
        except (BotoCoreError, ClientError):
            pass  # the bucket's AbortIncompleteMultipartUpload lifecycle rule removes it later


def iter_body(body: Any, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """A StreamingBody's bytes in chunks (closed at the end)."""
    try:
        yield from body.iter_chunks(chunk)
    finally:
        body.close()


def rfc3339(moment: datetime) -> str:
    """S3's LastModified as RFC 3339 in UTC (Cortex's ``timestamp``)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
