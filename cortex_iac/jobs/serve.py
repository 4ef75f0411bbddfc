"""``cortex serve`` of a BatchAPI or TaskAPI: the job gateway on 127.0.0.1, against a local
DynamoDB/SQS/S3 endpoint (a moto server started for the purpose, or ``--aws-endpoint``) and the local
Kubernetes API stand-in (:mod:`cortex_iac.jobs.local`), which runs each submitted job's pods as local
processes: the batch worker with the Job's environment, and the user's handler through our serving
runtime.

The processes are the deployed ones (``python -m cortex_iac.jobs.gateway``, ``... .worker``,
``python -m cortex_iac.serving``) with the settings the renderer gives them (``render.jobs``), on local
ports and with this machine's handler file. Only ``handler:`` containers run here: an image needs a
container engine, so a job API with an image container is refused before anything starts (every
TaskAPI, whose containers the spec layer requires to be images). On Ctrl-C/SIGTERM the gateway
stops first (it finishes the submissions under way), then every job's processes (SIGTERM, SIGKILL
after the grace), then the moto server, whose state (jobs, queues) is in memory and gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cortex_iac.jobs.contract import (
    GATEWAY_COMMAND,
    HEALTH_PATH,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    WORKER_COMMAND,
    WORKER_CONTAINER_NAME,
    WORKER_JOB_ENV,
    job_namespace,
)
from cortex_iac.queue.serve import LOCAL_REGION, MOTO_CREDENTIALS, AsyncServeError, start_moto, stop_process, wait_http

if TYPE_CHECKING:
    from cortex_iac.specs import BatchApiSpec, TaskApiSpec

    JobApiSpec = BatchApiSpec | TaskApiSpec

LOCAL_CLUSTER = "cortex-serve"
# A job's processes get this long to exit after SIGTERM (stop, timeout, shutdown) before SIGKILL.
_LOCAL_POD_GRACE_SECONDS = 10.0
# The worker's SQS long poll: short locally, so a stopping worker (and `cortex serve`) ends quickly.
_LOCAL_POLL_WAIT_SECONDS = 2


class JobServeError(AsyncServeError):
    """Raised for what stops a job API from being served here (turned into a ServeError by the caller)."""


def refuse_images(api: JobApiSpec, api_file: str) -> None:
    """Refuse, in one line naming the file and the container, a job API with an image container."""
    for c in api.pod.containers:
        if c.image is not None:
            raise JobServeError(
                f"{api_file}: {api.kind} {api.name!r}: container {c.name!r} runs the image {c.image!r}; cortex serve "
                "runs a job API only when its containers give a `handler:` (there is no Docker engine here)")


def create_job_table(dynamodb: Any, name: str) -> None:
    """The job table as the infrastructure creates it (``render.jobs.job_table``: the contract's
    keys, both strings; on-demand). Its TTL needs no emulation locally. A table of that name already
    at the endpoint (``--aws-endpoint``, a second run) is used as it is: its job history stays."""
    if name in dynamodb.list_tables().get("TableNames", []):
        return
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"},
                   {"AttributeName": TABLE_SORT_KEY, "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"},
                              {"AttributeName": TABLE_SORT_KEY, "AttributeType": "S"}],
    )


def local_job_template(api: BatchApiSpec, handler_path: Path, *, table: str, region: str,
                       aws_env: dict[str, str]) -> dict[str, Any]:
    """The API's job template as ``render.jobs.job_template`` renders it, made runnable here: the
    handler container runs this Python's serving runtime on the local handler file (no handler
    ConfigMap), the worker runs this Python's worker against the local AWS endpoint with a short
    long poll; every other setting is the deployed one."""
    from cortex_iac.render import workload
    from cortex_iac.render.jobs import COMPONENTS, JOB_GRACE_SECONDS, JobContext, job_template, worker_config

    context = JobContext(cluster_name=LOCAL_CLUSTER, runtime_image="cortex-serve", table_name=table, region=region)
    handler = workload.handler_container(api, job_namespace(api.name), context.runtime_image, None,
                                         COMPONENTS[api.kind])
    assert handler is not None  # refuse_images: every container gives a handler
    template = job_template(api, context, handler)
    pod = template["spec"]["template"]["spec"]
    pod["volumes"] = [v for v in pod.get("volumes", []) if v["name"] != workload.HANDLER_VOLUME]
    shutdown = workload.Shutdown(prestop_sleep_seconds=0, runtime_grace_seconds=JOB_GRACE_SECONDS - 5)
    runtime_env = workload.runtime_config(api, handler, shutdown, handler_path=str(handler_path), host="127.0.0.1",
                                          python_requirements=()).to_env()
    worker_env = replace(worker_config(api, context), aws_endpoint_url=aws_env["AWS_ENDPOINT_URL"],
                         poll_wait=_LOCAL_POLL_WAIT_SECONDS).to_env()
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        env = {e["name"]: e["value"] for e in c.get("env", [])}
        if c["name"] == WORKER_CONTAINER_NAME:
            c["command"] = [sys.executable, *WORKER_COMMAND[1:]]
            env.update({k: v for k, v in worker_env.items() if k not in WORKER_JOB_ENV})
        else:
            c["command"] = [sys.executable, "-m", "cortex_iac.serving"]
            env.update(runtime_env)
            env.update(handler.container.env)
        env.update(aws_env)
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
        c["volumeMounts"] = [m for m in c.get("volumeMounts", []) if m["name"] != workload.HANDLER_VOLUME]
    return template


def serve_job_api(api: JobApiSpec, api_file: str, handler_path: Path, *, port: int, aws_endpoint: str | None,
                  grace_period: float, free_port: Any, stop: Any) -> int:
    """Run the API until ``stop.requested``; return 0 after a clean stop, 1 if a process failed."""
    import boto3

    from cortex_iac.jobs.local import local_kube
    from cortex_iac.render.jobs import JobContext, gateway_config
    from cortex_iac.specs import BatchApiSpec

    refuse_images(api, api_file)
    assert isinstance(api, BatchApiSpec)  # a TaskAPI's containers are images (spec layer)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    region = os.environ.get("AWS_REGION") or LOCAL_REGION
    aws_env: dict[str, str] = {"AWS_REGION": region}
    own_moto = aws_endpoint is None
    with tempfile.TemporaryDirectory(prefix=f"cortex-serve-{api.name}-") as tmp:
        try:
            if aws_endpoint is None:
                moto_port = free_port()
                procs.append(("moto server", start_moto(moto_port)))
                aws_endpoint = f"http://127.0.0.1:{moto_port}"
                aws_env.update(MOTO_CREDENTIALS)
                if not wait_http(aws_endpoint + "/moto-api/data.json", procs, stop):
                    return 0 if stop.requested else _exit_code(procs)
            aws_env["AWS_ENDPOINT_URL"] = aws_endpoint
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                if key not in aws_env and key in os.environ:
                    aws_env[key] = os.environ[key]
            table = f"{api.name}-jobs"
            session = boto3.session.Session(region_name=region, aws_access_key_id=aws_env.get("AWS_ACCESS_KEY_ID"),
                                            aws_secret_access_key=aws_env.get("AWS_SECRET_ACCESS_KEY"))
            try:
                create_job_table(session.client("dynamodb", endpoint_url=aws_endpoint), table)
            except Exception as error:
                raise JobServeError(f"cannot create the job table {table!r} at {aws_endpoint}: {error}") from error
            template_path = Path(tmp) / "job-template.json"
            template_path.write_text(json.dumps(
                local_job_template(api, handler_path, table=table, region=region, aws_env=aws_env)))
            with local_kube(Path(tmp), base_env=dict(os.environ)) as kube:
                kube.grace_seconds = _LOCAL_POD_GRACE_SECONDS
                context = JobContext(cluster_name=LOCAL_CLUSTER, runtime_image="", table_name=table, region=region)
                gateway = replace(gateway_config(api, context), aws_endpoint_url=aws_endpoint,
                                  job_template=str(template_path), kube_api_url=kube.url, kube_token_file="",
                                  kube_ca_file="", api_key_file=None, host="127.0.0.1", port=port)
                procs.append(("gateway", subprocess.Popen([sys.executable, *GATEWAY_COMMAND[1:]],
                                                          env={**os.environ, **aws_env, **gateway.to_env()},
                                                          start_new_session=True)))
                if not wait_http(f"http://127.0.0.1:{port}{HEALTH_PATH}", procs, stop):
                    return 0 if stop.requested else _exit_code(procs)
                _print_banner(api, port, aws_endpoint, Path(tmp) / "pods", moto=own_moto)
                while not stop.requested:
                    if any(proc.poll() is not None for _, proc in procs):
                        return _exit_code(procs)
                    time.sleep(0.1)
                # The gateway first (it finishes the submissions under way), then the jobs' processes
                # (leaving local_kube), then the moto server.
                codes = [stop_process(procs[-1], grace_period)]
            codes += [stop_process(named, grace_period) for named in reversed(procs[:-1])]
            return max(codes)
        finally:
            for _, proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def _exit_code(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    for name, proc in procs:
        if proc.poll() is not None:
            print(f"cortex serve: the {name} exited with code {proc.returncode}", file=sys.stderr)
    return 1


def _print_banner(api: BatchApiSpec, port: int, aws_endpoint: str, pods: Path, *, moto: bool) -> None:
    from cortex_iac.render import routing

    url = f"http://127.0.0.1:{port}{routing.endpoint_of(api)}"
    backend = f"a moto server at {aws_endpoint} (in memory: gone when this stops)" if moto else aws_endpoint
    example = json.dumps({"workers": 1, "item_list": {"items": [1, 2, 3, 4, 5], "batch_size": 2}})
    print(f"{api.name}: BatchAPI on {url}  (Ctrl-C to stop)", flush=True)
    print(f"  job table and queues on {backend}; each job's worker and handler run here as local processes",
          flush=True)
    print(f"  each job's container logs: {pods}/<job pod>/<container>.log", flush=True)
    if api.jobs.api_key_secret is not None:
        print("  no API key is required locally (jobs.api_key_secret is a cluster Secret)", flush=True)
    print(f"  submit:  curl -s -X POST {url} -H 'Content-Type: application/json' -d '{example}'", flush=True)
    print(f"  status:  curl -s '{url}?jobID=<job_id>'", flush=True)
    print(f"  stop:    curl -s -X DELETE '{url}?jobID=<job_id>'", flush=True)
