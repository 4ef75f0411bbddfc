"""``cortex serve`` of an AsyncAPI: the gateway, the queue worker and the user's handler (our serving
runtime) on 127.0.0.1, against a local SQS/S3 endpoint: a moto server started for the purpose, or
the endpoint given with ``--aws-endpoint``.

The processes are the pod's (``python -m cortex_iac.queue.gateway``, ``... .worker``,
``python -m cortex_iac.serving``) with the settings the renderer gives them, on local ports. They stop
as a deployment would: the gateway first (it finishes the submissions under way), then the worker
(stops receiving, finishes what it holds), then the runtime, then the moto server. A moto server
keeps everything in memory: what is still queued when it stops is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cortex_iac import local_moto
from cortex_iac.local import terminate
from cortex_iac.queue import contract

if TYPE_CHECKING:
    from cortex_iac.runtime_contract import RuntimeConfig
    from cortex_iac.specs import AsyncApiSpec

LOCAL_REGION = "us-east-1"
# moto accepts any credentials; these only keep the SDK from looking for real ones.
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "cortex-serve", "AWS_SECRET_ACCESS_KEY": "cortex-serve"}
_STARTUP_SECONDS = 30.0
_LOCAL_RECEIVE_WAIT_SECONDS = 2


class AsyncServeError(Exception):
    """Raised for what stops an AsyncAPI from being served here (turned into a ServeError by the caller)."""


def serve_async(api: AsyncApiSpec, runtime_config: RuntimeConfig, runtime_env: dict[str, str], *, port: int,
                aws_endpoint: str | None, grace_period: float, free_port: Any, stop: Any) -> int:
    """Run the API until ``stop.requested``; return 0 after a clean stop, 1 if a process failed."""
    import boto3

    from cortex_iac.queue.provision import create_resources
    from cortex_iac.render.async_api import AsyncResources, gateway_config, readiness_of, worker_config

    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    aws_env: dict[str, str] = {"AWS_REGION": os.environ.get("AWS_REGION") or LOCAL_REGION}
    own_moto = aws_endpoint is None
    try:
        if aws_endpoint is None:
            moto_port = free_port()
            procs.append(("moto server", start_moto(moto_port)))
            aws_endpoint = f"http://127.0.0.1:{moto_port}"
            aws_env.update(MOTO_CREDENTIALS)
            wait_http(aws_endpoint + "/moto-api/data.json", procs, stop)
        aws_env["AWS_ENDPOINT_URL"] = aws_endpoint
        env = {**os.environ, **aws_env}
        session = boto3.session.Session(region_name=aws_env["AWS_REGION"],
                                        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
                                        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"))
        try:
            resources = create_resources(
                session.client("sqs", endpoint_url=aws_endpoint), session.client("s3", endpoint_url=aws_endpoint),
                api.name, bucket=f"cortex-serve-{api.name}"[:63].rstrip("-"),
                visibility_timeout=contract.DEFAULT_VISIBILITY_TIMEOUT_SECONDS, max_attempts=api.queue.max_attempts)
        except Exception as error:
            raise AsyncServeError(f"cannot create the API's queues and bucket at {aws_endpoint}: {error}") from error
        app_port = runtime_config.port
        procs.append(("runtime", subprocess.Popen([sys.executable, "-m", "cortex_iac.serving"],
                                                  env={**runtime_env, **aws_env}, start_new_session=True)))
        # The pod's own settings (render.async_api), on this machine's ports and with the local grace period.
        aws = AsyncResources(queue_url=resources.queue_url, dead_letter_queue_url=resources.dead_letter_queue_url,
                             bucket=resources.bucket, region=aws_env["AWS_REGION"])
        gateway = replace(gateway_config(api, aws), host="127.0.0.1", port=port, metrics_port=free_port(),
                          grace_period=grace_period)
        probe = readiness_of(api)
        worker = replace(worker_config(api, aws), user_port=app_port, admin_port=free_port(), grace_period=grace_period,
                         readiness_probe=replace(probe, port=app_port),
                         # A stopping worker waits for its long poll; locally a short one stops quickly.
                         receive_wait=_LOCAL_RECEIVE_WAIT_SECONDS, dead_letter_poll_interval=5.0)
        procs.append(("queue worker", subprocess.Popen([sys.executable, *contract.WORKER_COMMAND[1:]],
                                                       env={**env, **worker.to_env()}, start_new_session=True)))
        procs.append(("gateway", subprocess.Popen([sys.executable, *contract.GATEWAY_COMMAND[1:]],
                                                  env={**env, **gateway.to_env()}, start_new_session=True)))
        if not (wait_http(f"http://127.0.0.1:{app_port}/readyz", procs, stop)
                and wait_http(f"http://127.0.0.1:{port}{contract.GATEWAY_HEALTH_PATH}", procs, stop)
                and wait_http(f"http://127.0.0.1:{worker.admin_port}{contract.WORKER_HEALTH_PATH}", procs, stop)):
            return 0 if stop.requested else _report_exit(procs)
        _print_banner(api, port, gateway.metrics_port, worker.admin_port, aws_endpoint, moto=own_moto)
        while not stop.requested:
            if any(proc.poll() is not None for _, proc in procs):
                return _report_exit(procs)
            time.sleep(0.1)
        return _stop_in_order(procs, grace_period)
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def start_moto(port: int) -> subprocess.Popen[bytes]:
    """A moto server on 127.0.0.1:``port`` (its own session, so a stop reaches only it); the local
    stand-in for SQS, S3 and DynamoDB of `cortex serve` (AsyncAPIs and job APIs)."""
    if not local_moto.installed():
        raise AsyncServeError("cortex serve needs a local AWS endpoint for this API: install moto's server (pip install 'moto[server]') "
                              "or pass --aws-endpoint URL of a local SQS/S3/DynamoDB endpoint")
    return subprocess.Popen(local_moto.command(port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wait_http(url: str, procs: list[tuple[str, subprocess.Popen[bytes]]], stop: Any) -> bool:
    """Poll ``url`` until it answers 2xx (bounded); False if a process exits or a stop comes first."""
    deadline = time.monotonic() + _STARTUP_SECONDS
    while not stop.requested and all(proc.poll() is None for _, proc in procs):
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if 200 <= response.status < 300:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AsyncServeError(f"{url} did not answer within {_STARTUP_SECONDS:g} s")
        time.sleep(0.1)
    return False


def _report_exit(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    for name, proc in procs:
        if proc.poll() is not None:
            print(f"cortex serve: the {name} exited with code {proc.returncode}", file=sys.stderr)
    return 1


def _stop_in_order(procs: list[tuple[str, subprocess.Popen[bytes]]], grace_period: float) -> int:
    """Gateway, worker, runtime, moto: each gets SIGTERM and its grace period. Returns 0 if every one
    of ours exited 0."""
    return max((stop_process(named, grace_period) for named in reversed(procs)), default=0)


def stop_process(named: tuple[str, subprocess.Popen[bytes]], grace_period: float) -> int:
    """SIGTERM to one of cortex serve's processes, SIGKILL if it outlives ``grace_period`` (+5 s);
    1 (said on stderr) if one of ours (not the moto server) ended with another code than 0 or SIGTERM."""
    name, proc = named
    terminate(proc, grace_period + 5)
    if name != "moto server" and proc.returncode not in (0, -signal.SIGTERM):
        print(f"cortex serve: the {name} exited with code {proc.returncode}", file=sys.stderr)
        return 1
    return 0


def _print_banner(api: AsyncApiSpec, port: int, metrics_port: int, admin_port: int, aws_endpoint: str, *,
                  moto: bool) -> None:
    url = f"http://127.0.0.1:{port}{api.networking.endpoint}"
    backend = f"a moto server at {aws_endpoint} (in memory: gone when this stops)" if moto else aws_endpoint
    print(f"{api.name}: AsyncAPI on {url}  (Ctrl-C to stop)", flush=True)
    print(f"  queue, dead-letter queue and bucket on {backend}", flush=True)
    print(f"  submit:  curl -s -X POST {url} -H 'Content-Type: application/json' -d '{{\"x\": 1}}'", flush=True)
    print(f"  poll:    curl -s {url}/<id>", flush=True)
    print(f"  metrics: http://127.0.0.1:{metrics_port}{contract.GATEWAY_METRICS_PATH} (gateway), "
          f"http://127.0.0.1:{admin_port}{contract.WORKER_METRICS_PATH} (worker)", flush=True)
