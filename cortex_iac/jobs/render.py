"""The Kubernetes objects a job creates at run time, as pure functions of the job template (rendered
statically from the API spec, see ``contract.JOB_TEMPLATE_KEY``) and the job.

The gateway sends exactly what these return; tests validate them with ``kubernetes-validate``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from cortex_iac.jobs.contract import (
    JOB_ID_LABEL,
    JOB_SPEC_DIR,
    JOB_SPEC_FILE,
    JOB_SPEC_VOLUME,
    WORKER_CONTAINER_NAME,
    JobConfigError,
    JobKind,
    job_object_name,
)

WORKER_EXIT_FATAL = 1
"""The worker's exit code for "retrying cannot help" (``worker.EXIT_APP_GONE``)."""

_PER_JOB_FIELDS = ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "podFailurePolicy",
                   "ttlSecondsAfterFinished")


def check_template(template: Mapping[str, Any], kind: JobKind) -> None:
    """Refuse a template the run-time render cannot complete (the gateway checks it at start-up)."""
    problems = []
    if template.get("apiVersion") != "batch/v1" or template.get("kind") != "Job":
        problems.append("must be a batch/v1 Job")
    spec = template.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    problems += [f"spec.{name} is set per job; leave it out" for name in _PER_JOB_FIELDS if name in spec]
    if "name" in template.get("metadata", {}):
        problems.append("metadata.name is set per job; leave it out")
    if pod.get("restartPolicy") != "Never":
        problems.append("spec.template.spec.restartPolicy must be Never")
    if any(v.get("name") == JOB_SPEC_VOLUME for v in pod.get("volumes", [])):
        problems.append(f"volume {JOB_SPEC_VOLUME} is added per job; leave it out")
    names = [c.get("name") for c in pod.get("containers", [])]
    if kind == "BatchAPI" and names != [WORKER_CONTAINER_NAME]:
        problems.append(f"BatchAPI: containers must be exactly [{WORKER_CONTAINER_NAME}] (the user's containers "
                        "are native sidecars in initContainers)")
    if kind == "TaskAPI" and (not names or WORKER_CONTAINER_NAME in names):
        problems.append(f"TaskAPI: containers must be the user's containers, without {WORKER_CONTAINER_NAME}")
    if problems:
        raise JobConfigError("job template: " + "; ".join(problems))


def job_object(
    template: Mapping[str, Any],
    *,
    kind: JobKind,
    api_name: str,
    job_id: str,
    parallelism: int,
    active_deadline_seconds: int | None,
    ttl_seconds_after_finished: int,
    worker_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The job's ``batch/v1`` Job: the template with the job's name and label, ``parallelism``
    (BatchAPI ``workers``; TaskAPI 1), ``activeDeadlineSeconds`` (the timeout left since
    submission), the TTL, the job-spec volume in every user container and (BatchAPI) the per-job
    worker variables, and how pod failures count:

    * a disruption (spot interruption, drain, eviction: the ``DisruptionTarget`` condition) never
      counts; the pod is replaced;
    * BatchAPI: a worker exiting 1 (its app stayed unreachable, a bad setting) fails the job at
      once; other worker deaths (killed, OOM-killed) are replaced up to ``workers`` times in all
      (``backoffLimit``), their batches redelivered;
    * TaskAPI: ``backoffLimit: 0``, a task runs once (Cortex).
    """
    job = copy.deepcopy(dict(template))
    name = job_object_name(api_name, job_id)
    metadata = job.setdefault("metadata", {})
    metadata["name"] = name
    metadata.setdefault("labels", {})[JOB_ID_LABEL] = job_id
    spec = job["spec"]
    pod_template = spec["template"]
    pod_template.setdefault("metadata", {}).setdefault("labels", {})[JOB_ID_LABEL] = job_id
    pod = pod_template["spec"]
    spec["parallelism"] = parallelism
    rules: list[dict[str, Any]] = [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]
    if kind == "BatchAPI":
        rules.append({"action": "FailJob", "onExitCodes": {
            "containerName": WORKER_CONTAINER_NAME, "operator": "In", "values": [WORKER_EXIT_FATAL]}})
    spec["backoffLimit"] = parallelism if kind == "BatchAPI" else 0
    spec["podFailurePolicy"] = {"rules": rules}
    spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    if active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = active_deadline_seconds
    pod.setdefault("volumes", []).append({"name": JOB_SPEC_VOLUME, "configMap": {"name": name}})
    mount = {"name": JOB_SPEC_VOLUME, "mountPath": JOB_SPEC_DIR, "readOnly": True}
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        if container["name"] == WORKER_CONTAINER_NAME:
            env = [e for e in container.get("env", []) if e["name"] not in (worker_env or {})]
            container["env"] = env + [{"name": k, "value": v} for k, v in (worker_env or {}).items()]
        else:
            container.setdefault("volumeMounts", []).append(dict(mount))
    if kind == "TaskAPI" and worker_env:
        raise JobConfigError("TaskAPI jobs have no worker: worker_env must be empty")
    return job


def job_spec_config_map(job: Mapping[str, Any], spec: Mapping[str, Any], *, owner_uid: str) -> dict[str, Any]:
    """The ConfigMap holding ``/cortex/spec/job.json`` (the job's spec, ``config`` included), owned by
    its Job so Kubernetes deletes it with the Job (no ``blockOwnerDeletion``: that would need
    ``update`` on ``jobs/finalizers``)."""
    name = job["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": job["metadata"]["namespace"],
            "labels": dict(job["metadata"].get("labels", {})),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": owner_uid}],
        },
        "data": {JOB_SPEC_FILE: json.dumps(spec, sort_keys=True, indent=2)},
    }
