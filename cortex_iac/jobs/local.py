"""A local stand-in for the Kubernetes API server, for ONE job gateway on 127.0.0.1: what lets
``cortex serve`` run a BatchAPI without a cluster, and what the live tests run the gateway against.

This is a local development stand-in, as ``cortex serve`` itself emulates a pod: the deployed
system has no controller of ours (on a cluster the gateway talks to the real API server, and the
kubelet and Kubernetes' Job controller run the pods). It serves exactly the REST calls of the
gateway's client (:class:`cortex_iac.jobs.kube.KubeClient`: create/get/delete of a ``batch/v1``
Job, create/delete of a ConfigMap, list of pods by label, in the gateway's namespace), and runs a
Job the way the kubelet and the Job controller would, with local processes:

* a pod starts once every ConfigMap it mounts exists; each of its containers is a process with the
  container's command, args and env; a ConfigMap volume is a directory (its mount path is
  replaced by that directory in the command, args and env values);
* each pod gets its own loopback port for the app: the worker's ``CORTEX_APP_PORT`` value is
  replaced by a free port in that pod's containers (pods share 127.0.0.1 here);
* native sidecars (init containers with ``restartPolicy: Always``) start first, are restarted when
  they exit, and are stopped (SIGTERM) when the regular containers have all exited; the pod
  succeeded if they all exited 0;
* ``parallelism`` pods; ``podFailurePolicy`` (Ignore on ``DisruptionTarget``, FailJob on exit
  codes), ``backoffLimit`` with replacement pods, ``activeDeadlineSeconds`` (pods stopped, reason
  ``DeadlineExceeded``); ``Complete`` once a pod succeeded and none is active (no ``completions``);
  the Job's status (``active``/``succeeded``/``failed``, a ``Complete`` or ``Failed`` condition
  with its reason) as the Job controller reports it;
* DELETE of a Job stops its pods (SIGTERM, SIGKILL after the grace) and deletes the ConfigMaps it
  owns. ``ttlSecondsAfterFinished`` is not emulated (a local Job stays until deleted or shutdown).

Images are not run (no container engine here): the caller gives containers a local command
(``cortex serve`` refuses image containers before anything starts).
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cortex_iac.jobs.contract import WORKER_CONTAINER_NAME
from cortex_iac.local import free_port, port_open

_GRACE = 3.0
_TICK = 0.05


@dataclass
class Container:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    exit_code: int | None = None
    reason: str | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()


@dataclass
class Pod:
    name: str
    labels: dict[str, str]
    sidecars: list[Container]
    regular: list[Container]
    phase: str = "Pending"
    deleting: bool = False
    disrupted: bool = False
    stop_at: float | None = None
    started_regular: bool = False

    @property
    def active(self) -> bool:
        return self.phase in ("Pending", "Running")

    def signal_all(self, sig: int, containers: list[Container]) -> None:
        for c in containers:
            if c.proc is not None and c.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, sig)

    def to_json(self) -> dict[str, Any]:
        def status(c: Container) -> dict[str, Any]:
            code = c.poll()
            state: dict[str, Any] = {"running": {}} if c.proc is not None and code is None else (
                {"terminated": {"exitCode": code, "reason": c.reason or ("Completed" if code == 0 else "Error")}}
                if code is not None else {"waiting": {"reason": "PodInitializing"}})
            return {"name": c.name, "state": state, "restartCount": c.restarts, "ready": "running" in state}

        meta: dict[str, Any] = {"name": self.name, "labels": self.labels}
        if self.deleting:
            meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        conditions = [{"type": "DisruptionTarget", "status": "True"}] if self.disrupted else []
        return {"metadata": meta, "status": {
            "phase": self.phase, "conditions": conditions,
            "initContainerStatuses": [status(c) for c in self.sidecars],
            "containerStatuses": [status(c) for c in self.regular]}}


@dataclass
class Job:
    obj: dict[str, Any]
    started: float
    pods: list[Pod] = field(default_factory=list)
    failed: int = 0
    succeeded: int = 0
    condition: tuple[str, str] | None = None
    created_pods: int = 0

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.obj["spec"])

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"startTime": "2026-01-01T00:00:00Z",
                               "active": sum(p.active for p in self.pods),
                               "succeeded": self.succeeded, "failed": self.failed}
        if self.condition is not None:
            out["conditions"] = [{"type": self.condition[0], "status": "True", "reason": self.condition[1]}]
        return out


class LocalKube:
    """The stand-in. ``url`` once started; ``errors``: what it refused (objects failing ``check``, a
    wrong namespace, a DELETE that would orphan pods).

    ``workdir``: where each pod's directory (ConfigMap volumes, container logs) goes. ``check``: called
    with every posted object; an exception refuses it with 422 (the live tests pass a strict schema
    validation). ``base_env``: the environment every container starts from (its own ``env`` on
    top); default ``PATH`` and ``HOME`` (the pod's directory) only, as in a container.
    """

    def __init__(self, workdir: Path, *, check: Callable[[dict[str, Any]], None] | None = None,
                 base_env: Mapping[str, str] | None = None, grace_seconds: float = _GRACE) -> None:
        self.tmp = workdir
        self._check = check
        self._base_env = dict(base_env) if base_env is not None else None
        self.grace_seconds = grace_seconds
        self.jobs: dict[tuple[str, str], Job] = {}
        self.config_maps: dict[tuple[str, str], dict[str, Any]] = {}
        self.errors: list[str] = []
        self.deleted_jobs: list[str] = []
        self._orphans: list[Pod] = []  # pods of deleted Jobs, still terminating
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    # --- REST --------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        jobs = "/apis/batch/v1/namespaces/{ns}/jobs"
        cms = "/api/v1/namespaces/{ns}/configmaps"
        return Starlette(routes=[
            Route(jobs, self._create_job, methods=["POST"]),
            Route(jobs + "/{name}", self._job, methods=["GET", "DELETE"]),
            Route(cms, self._create_config_map, methods=["POST"]),
            Route(cms + "/{name}", self._delete_config_map, methods=["DELETE"]),
            Route("/api/v1/namespaces/{ns}/pods", self._list_pods, methods=["GET"]),
        ])

    def _validate(self, obj: dict[str, Any], ns: str) -> JSONResponse | None:
        try:
            if self._check is not None:
                self._check(obj)
        except Exception as error:
            self.errors.append(str(error))
            return JSONResponse({"kind": "Status", "message": str(error)}, status_code=422)
        if obj.get("metadata", {}).get("namespace", ns) != ns:
            self.errors.append(f"namespace {obj['metadata']['namespace']} posted to {ns}")
            return JSONResponse({"message": "namespace mismatch"}, status_code=400)
        return None

    async def _create_job(self, request: Request) -> JSONResponse:
        ns = request.path_params["ns"]
        obj = await request.json()
        refused = self._validate(obj, ns)
        if refused is not None:
            return refused
        with self.lock:
            key = (ns, obj["metadata"]["name"])
            if key in self.jobs:
                return JSONResponse({"message": "already exists"}, status_code=409)
            obj = copy.deepcopy(obj)
            obj["metadata"].update(uid=str(uuid.uuid4()), namespace=ns)
            self.jobs[key] = Job(obj=obj, started=time.monotonic())
            return JSONResponse(obj, status_code=201)

    async def _job(self, request: Request) -> JSONResponse:
        key = (request.path_params["ns"], request.path_params["name"])
        with self.lock:
            job = self.jobs.get(key)
            if job is None:
                return JSONResponse({"kind": "Status", "code": 404}, status_code=404)
            if request.method == "GET":
                return JSONResponse({**job.obj, "status": job.status()})
            if (await request.json()).get("propagationPolicy") not in ("Background", "Foreground"):
                self.errors.append(f"DELETE job {job.name} without propagationPolicy: its pods would be orphaned")
            del self.jobs[key]
            self.deleted_jobs.append(job.name)
            for pod in job.pods:
                self._terminate(pod)
            uid = job.obj["metadata"]["uid"]
            for cm_key, cm in list(self.config_maps.items()):
                if any(o.get("uid") == uid for o in cm["metadata"].get("ownerReferences", [])):
                    del self.config_maps[cm_key]
            self._orphans.extend(job.pods)
            return JSONResponse({"kind": "Status", "status": "Success"})

    async def _create_config_map(self, request: Request) -> JSONResponse:
        ns = request.path_params["ns"]
        obj = await request.json()
        refused = self._validate(obj, ns)
        if refused is not None:
            return refused
        with self.lock:
            self.config_maps[(ns, obj["metadata"]["name"])] = obj
        return JSONResponse(obj, status_code=201)

    async def _delete_config_map(self, request: Request) -> JSONResponse:
        with self.lock:
            found = self.config_maps.pop((request.path_params["ns"], request.path_params["name"]), None)
        return JSONResponse({}, status_code=200 if found else 404)

    async def _list_pods(self, request: Request) -> JSONResponse:
        ns = request.path_params["ns"]
        key, _, value = request.query_params.get("labelSelector", "").partition("=")
        with self.lock:
            pods = [p.to_json() for (n, _), j in self.jobs.items() if n == ns for p in j.pods
                    if p.labels.get(key) == value]
        return JSONResponse({"kind": "PodList", "items": pods})

    # --- the kubelet and the Job controller ---------------------------------------------------------

    def _new_pod(self, job: Job, ns: str) -> Pod | None:
        pod_spec = job.spec["template"]["spec"]
        volumes = {}
        for v in pod_spec.get("volumes", []):
            if "configMap" in v:
                cm = self.config_maps.get((ns, v["configMap"]["name"]))
                if cm is None:
                    return None  # the kubelet waits for the volume
                volumes[v["name"]] = cm
        name = f"{job.name}-{job.created_pods}"
        job.created_pods += 1
        pod_dir = self.tmp / "pods" / name
        pod_dir.mkdir(parents=True, exist_ok=True)
        worker = next((c for c in pod_spec["containers"] if c["name"] == WORKER_CONTAINER_NAME), None)
        app_port = next((e["value"] for e in (worker or {}).get("env", []) if e["name"] == "CORTEX_APP_PORT"), None)
        local_port = str(free_port())

        def container(spec: dict[str, Any]) -> Container:
            replace: dict[str, str] = {}
            for mount in spec.get("volumeMounts", []):
                if mount["name"] in volumes:
                    target = pod_dir / mount["name"]
                    target.mkdir(exist_ok=True)
                    for file_name, text in volumes[mount["name"]].get("data", {}).items():
                        (target / file_name).write_text(text)
                    replace[mount["mountPath"]] = str(target)

            def sub(text: str) -> str:
                for a, b in replace.items():
                    text = text.replace(a, b)
                if app_port is not None and text == app_port:
                    return local_port
                return text

            env = ({"PATH": os.environ.get("PATH", ""), "HOME": str(pod_dir)} if self._base_env is None
                   else dict(self._base_env))
            env.update({e["name"]: sub(e["value"]) for e in spec.get("env", [])})
            argv = [sub(a) for a in [*spec.get("command", []), *spec.get("args", [])]]
            return Container(name=spec["name"], argv=argv, env=env, log=pod_dir / f"{spec['name']}.log")

        labels = {**job.spec["template"].get("metadata", {}).get("labels", {}), "job-name": job.name}
        return Pod(name=name, labels=labels,
                   sidecars=[container(c) for c in pod_spec.get("initContainers", [])],
                   regular=[container(c) for c in pod_spec["containers"]])

    def _terminate(self, pod: Pod) -> None:
        if pod.stop_at is None and pod.active:
            pod.deleting = True
            pod.signal_all(signal.SIGTERM, pod.regular)
            pod.stop_at = time.monotonic() + self.grace_seconds

    def _step_pod(self, pod: Pod) -> None:
        if not pod.active:
            return
        if pod.phase == "Pending":
            for c in pod.sidecars:
                c.start()
            pod.phase = "Running"
        if not pod.started_regular:
            pod.started_regular = True
            for c in pod.regular:
                c.start()
        if pod.stop_at is not None and time.monotonic() > pod.stop_at:
            pod.signal_all(signal.SIGKILL, pod.regular + pod.sidecars)
        if all(c.poll() is not None for c in pod.regular):
            pod.signal_all(signal.SIGTERM, pod.sidecars)
            deadline = time.monotonic() + self.grace_seconds
            for c in pod.sidecars:
                if c.proc is not None:
                    try:
                        c.proc.wait(max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        pod.signal_all(signal.SIGKILL, [c])
                        c.proc.wait()
            pod.phase = "Succeeded" if all(c.poll() == 0 for c in pod.regular) else "Failed"
            return
        if pod.stop_at is None:
            for c in pod.sidecars:  # restartPolicy: Always
                if c.poll() is not None:
                    c.restarts += 1
                    c.start()

    def _step_job(self, ns: str, job: Job) -> None:
        spec = job.spec
        for pod in job.pods:
            was_active = pod.active
            self._step_pod(pod)
            if was_active and not pod.active:
                self._pod_ended(job, pod)
        if job.condition is not None:
            return
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and time.monotonic() - job.started > deadline:
            self._fail(job, "DeadlineExceeded")
            return
        active = [p for p in job.pods if p.active]
        if job.succeeded and not active:
            job.condition = ("Complete", "")
            return
        while not job.succeeded and len(active) < spec.get("parallelism", 1):
            new = self._new_pod(job, ns)
            if new is None:
                return
            job.pods.append(new)
            active.append(new)

    def _pod_ended(self, job: Job, pod: Pod) -> None:
        if pod.phase == "Succeeded":
            job.succeeded += 1
            return
        if pod.disrupted or job.condition is not None:
            return
        for rule in job.spec.get("podFailurePolicy", {}).get("rules", []):
            on_codes = rule.get("onExitCodes")
            if on_codes:
                codes = [c.poll() for c in pod.regular if c.name == on_codes.get("containerName", c.name)]
                if any(code in on_codes["values"] for code in codes) and rule["action"] == "FailJob":
                    job.failed += 1
                    self._fail(job, "PodFailurePolicy")
                    return
        job.failed += 1
        if job.failed > job.spec.get("backoffLimit", 6):
            self._fail(job, "BackoffLimitExceeded")

    def _fail(self, job: Job, reason: str) -> None:
        job.condition = ("Failed", reason)
        for pod in job.pods:
            self._terminate(pod)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                for (ns, _), job in list(self.jobs.items()):
                    self._step_job(ns, job)
                for pod in list(self._orphans):
                    self._step_pod(pod)
                    if not pod.active:
                        self._orphans.remove(pod)
            time.sleep(_TICK)

    # --- test hooks ----------------------------------------------------------------------------------

    def job(self, name: str) -> Job | None:
        with self.lock:
            return next((j for (_, n), j in self.jobs.items() if n == name), None)

    def disrupt(self, pod: Pod) -> None:
        """A spot interruption: the pod gets DisruptionTarget and SIGTERM."""
        with self.lock:
            pod.disrupted = True
            self._terminate(pod)

    def all_processes(self) -> list[Container]:
        with self.lock:
            pods = [p for j in self.jobs.values() for p in j.pods] + list(self._orphans)
            return [c for p in pods for c in p.sidecars + p.regular]

    def shutdown(self) -> None:
        """Stop the Job loop and every container process: SIGTERM to each process group, SIGKILL to
        what is left after the grace. Nothing it started outlives this."""
        self._stop.set()
        with self.lock:
            running = [c for c in self.all_processes() if c.proc is not None and c.proc.poll() is None]
            for c in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
            deadline = time.monotonic() + self.grace_seconds
            for c in running:
                assert c.proc is not None
                try:
                    c.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGKILL)  # the group: children of the container too
                c.proc.wait()


@contextlib.contextmanager
def local_kube(workdir: Path, *, check: Callable[[dict[str, Any]], None] | None = None,
               base_env: Mapping[str, str] | None = None) -> Iterator[LocalKube]:
    """The stand-in on a free port of 127.0.0.1, its Job loop running, until the block ends; then
    every process it started is stopped (SIGTERM, SIGKILL after the grace)."""
    kube = LocalKube(workdir, check=check, base_env=base_env)
    server = uvicorn.Server(uvicorn.Config(kube.app(), host="127.0.0.1", port=kube.port, log_level="warning"))
    serving = threading.Thread(target=server.run, daemon=True)
    looping = threading.Thread(target=kube._loop, daemon=True)
    serving.start()
    looping.start()
    try:
        deadline = time.monotonic() + 10
        while not port_open(kube.port):
            if time.monotonic() > deadline or not serving.is_alive():
                raise RuntimeError(f"the local Kubernetes API stand-in did not start on port {kube.port}")
            time.sleep(0.05)
        yield kube
    finally:
        server.should_exit = True
        kube.shutdown()
        serving.join(10)
        looping.join(10)
