"""Job templates as the infrastructure renders them (contract.JOB_TEMPLATE_KEY), for the tests."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from cortex_iac.jobs.contract import WORKER_COMMAND, WORKER_CONTAINER_NAME, WORKER_JOB_ENV, WorkerConfig

NAMESPACE = "cortex-job-sum"


def _env(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def _job(api: str, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    labels = {"cortex.dev/api": api}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"namespace": namespace, "labels": labels},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never", **pod}}}}


def batch_template(api: str, app_argv: Sequence[str], *, worker: WorkerConfig, extra_env: Mapping[str, str] = {},
                   namespace: str = NAMESPACE, python: str = sys.executable) -> dict[str, Any]:
    """A BatchAPI template: the user's container as a native sidecar, the worker as the container.
    ``worker`` gives the static worker settings (its per-job ones are dropped)."""
    env = {k: v for k, v in worker.to_env().items() if k not in WORKER_JOB_ENV}
    return _job(api, namespace, {
        "serviceAccountName": f"{api}-worker",
        "initContainers": [{"name": "api", "image": "user/app:1", "command": list(app_argv), "restartPolicy": "Always",
                            "ports": [{"containerPort": worker.app_port}]}],
        "containers": [{"name": WORKER_CONTAINER_NAME, "image": "cortex/runtime:1",
                        "command": [python, *WORKER_COMMAND[1:]], "env": _env({**env, **extra_env})}],
    })


def task_template(api: str, argv: Sequence[str], *, namespace: str = NAMESPACE,
                  extra_env: Mapping[str, str] = {}) -> dict[str, Any]:
    """A TaskAPI template: the user's container is the pod's container."""
    return _job(api, namespace, {
        "serviceAccountName": f"{api}-task",
        "containers": [{"name": "task", "image": "user/task:1", "command": list(argv), "env": _env(extra_env)}],
    })
