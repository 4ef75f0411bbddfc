"""Job submissions (the bodies POSTed to a BatchAPI or TaskAPI endpoint), validated with pydantic.

Cortex's shapes (``pkg/operator/schema/job_submission.go``), with two changes: unknown keys are
refused (Cortex ignored them silently, so a misspelt ``timout`` ran without a timeout), and values are
not coerced (``"5"`` is not a number of workers). Every problem is one line naming the field.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cortex_iac.errors import CortexError

_S3_PATH = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?")
_SQS_ARN = re.compile(r"arn:aws[a-z\-]*:sqs:[a-z0-9\-]+:\d{12}:[A-Za-z0-9_\-]{1,75}(\.fifo)?")
MAX_ITEMS = 10_000_000
_PATTERN_NAMES = {
    _S3_PATH.pattern: "an S3 path such as s3://bucket/prefix",
    _SQS_ARN.pattern: "an SQS queue ARN (arn:aws:sqs:<region>:<account id>:<queue name>)",
}


class SubmissionError(CortexError):
    """A submission is invalid; ``problems`` holds one ``field: reason`` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class DeadLetterQueue(_Model):
    """``sqs_dead_letter_queue``: failed batches are retried, then moved there."""

    arn: Annotated[str, Field(pattern=_SQS_ARN.pattern)]
    max_receive_count: Annotated[int, Field(ge=1, le=1000)]


class ItemList(_Model):
    """``item_list``: the items themselves, split into batches of ``batch_size``."""

    items: Annotated[list[Any], Field(min_length=1, max_length=MAX_ITEMS)]
    batch_size: Annotated[int, Field(ge=1)]


S3Path = Annotated[str, Field(pattern=_S3_PATH.pattern, max_length=2048)]
Glob = Annotated[str, Field(min_length=1, max_length=1024)]


class FileLister(_Model):
    """``file_path_lister`` / ``delimited_files``: S3 prefixes, include and exclude globs."""

    s3_paths: Annotated[list[S3Path], Field(min_length=1, max_length=100)]
    includes: Annotated[list[Glob], Field(max_length=100)] = []
    excludes: Annotated[list[Glob], Field(max_length=100)] = []
    batch_size: Annotated[int, Field(ge=1)]


Timeout = Annotated[int, Field(ge=1)]


class BatchSubmission(_Model):
    """A BatchAPI job: ``workers`` and exactly one of ``item_list``, ``file_path_lister``,
    ``delimited_files``; optional ``config``, ``timeout`` (seconds from submission),
    ``sqs_dead_letter_queue``."""

    workers: Annotated[int, Field(ge=1)]
    item_list: ItemList | None = None
    file_path_lister: FileLister | None = None
    delimited_files: FileLister | None = None
    config: dict[str, Any] | None = None
    timeout: Timeout | None = None
    sqs_dead_letter_queue: DeadLetterQueue | None = None

    @model_validator(mode="after")
    def _one_source(self) -> BatchSubmission:
        given = [name for name in ("item_list", "file_path_lister", "delimited_files") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(f"exactly one is required (got {', '.join(given) if given else 'none'})")
        return self

    @property
    def lister(self) -> FileLister | None:
        return self.file_path_lister or self.delimited_files


class TaskSubmission(_Model):
    """A TaskAPI job: optional ``config``, ``timeout``; ``workers`` may only be 1 (Cortex's rule)."""

    config: dict[str, Any] | None = None
    timeout: Timeout | None = None
    workers: Annotated[int, Field(ge=1, le=1)] = 1


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse(model: type[_Model], body: bytes) -> Any:
    """Decode and validate ``body``; raise ``SubmissionError`` naming every bad field."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SubmissionError([f"body: not valid JSON ({error})"]) from None
    if not isinstance(data, dict):
        raise SubmissionError([f"body: must be a JSON object, not {type(data).__name__}"])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = []
        for e in error.errors(include_url=False):
            where = _field(tuple(e["loc"]))
            if e["type"] == "extra_forbidden":
                allowed = ", ".join(_allowed(model, e["loc"][:-1]))
                problems.append(f"{where}: unknown key (allowed: {allowed})")
            elif e["type"] == "value_error" and not e["loc"]:
                problems.append(f"item_list | file_path_lister | delimited_files: {e['ctx']['error']}")
            elif e["type"] == "string_pattern_mismatch":
                problems.append(f"{where}: {e['input']!r} is not {_PATTERN_NAMES[e['ctx']['pattern']]}")
            else:
                problems.append(f"{where}: {e['msg']}")
        raise SubmissionError(problems) from None


def _allowed(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = current.model_fields[str(part)].annotation
        args = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        current = next((a for a in args if issubclass(a, BaseModel)), current)
    return list(current.model_fields)
