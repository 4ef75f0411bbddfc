"""Cortex's task test API ("iris-classifier-trainer"): train a logistic regression on the iris data set
bundled with scikit-learn and write it, pickled, to S3.

A TaskAPI runs this once per submission. The submission's ``config`` arrives in the job spec,
``/cortex/spec/job.json``: ``{"dest_s3_dir": "s3://bucket/prefix"}`` (required) and ``max_iter``
(optional, default 1000). The model goes to ``<dest_s3_dir>/<job_id>/model.pkl``. Exit 0 reads as
``succeeded``; any exception exits 1, which reads as ``worker_error``.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

JOB_SPEC = Path(os.environ.get("CORTEX_JOB_SPEC", "/cortex/spec/job.json"))


def train(max_iter: int = 1000) -> Any:
    """The fitted classifier."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    return LogisticRegression(max_iter=max_iter).fit(data.data, data.target)


def destination(spec: dict[str, Any]) -> tuple[str, str]:
    """(bucket, key) of the model, from the job spec's config."""
    config = spec.get("config") or {}
    dest = config.get("dest_s3_dir")
    if not isinstance(dest, str) or not dest.startswith("s3://") or len(dest) <= len("s3://"):
        raise ValueError(f"config.dest_s3_dir: {dest!r} is not an S3 path such as s3://bucket/prefix")
    bucket, _, prefix = dest.removeprefix("s3://").partition("/")
    key = "/".join(part for part in (prefix.strip("/"), str(spec["job_id"]), "model.pkl") if part)
    return bucket, key


def main() -> int:
    spec = json.loads(JOB_SPEC.read_text())
    bucket, key = destination(spec)
    model = train(int((spec.get("config") or {}).get("max_iter", 1000)))
    import boto3

    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=pickle.dumps(model))
    print(f"model written to s3://{bucket}/{key}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
