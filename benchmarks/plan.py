"""Benchmark `cortex plan`: wall time, peak memory and dependency depth for growing stacks.

Generates stacks of the ready program (`stacks/`) with the dev cluster and N RealtimeAPIs, runs
`cortex plan --json` on each in a fresh process (as a user would), and reports:
- wall time and the child process's peak RSS,
- the number of resources,
- the depth of the plan's dependency graph (longest chain of dependencies, counting parents as
  dependencies too). Equal depth at 10 and 300 APIs means APIs do not wait on each other.

Usage: python benchmarks/plan.py [--apis 10 100 300 1000] [--repeat 3] [--keep-plans DIR] [--source DIR]
Prints a Markdown table (wall and CPU time of the process, medians; peak RSS, the largest of the
runs; the 1-minute load average before each size's runs, as other work on the machine inflates wall
times); paste it into docs/benchmarks.md with the command, machine and date. ``--keep-plans DIR``
writes each size's plan to ``DIR/plan-<N>.json`` (to diff the plans of two versions byte for byte);
``--source DIR`` plans with the cortex_iac package of another source tree (see below).

``--diff-cost [--source DIR]``: instead, time `cortex diff` (markdown) and `cortex cost` of the
stored preview fixture plans (tests/plan/fixtures/stack: base and the VPC change), each a fresh
process, and report whether the process imported the Pulumi SDK. ``--source`` runs the cortex_iac
package of another source tree (e.g. an older commit exported with ``git archive``) with this venv,
for a before/after comparison.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def make_program(root: Path, n_apis: int) -> Path:
    """A copy of the ready program whose dev stack declares ``n_apis`` RealtimeAPIs."""
    program = root / f"program-{n_apis}"
    shutil.copytree(REPO / "stacks", program / "stacks")
    shutil.copy(REPO / "Pulumi.yaml", program / "Pulumi.yaml")
    config = yaml.safe_load((REPO / "stacks" / "Pulumi.dev.yaml").read_text())
    config["config"]["cortex:apis"] = [
        {
            "name": f"model-{i:03d}",
            "kind": "RealtimeAPI",
            "pod": {
                "port": 8080,
                "max_concurrency": 4,
                "containers": [
                    {
                        "name": "api",
                        "image": f"registry.example.com/models/model-{i:03d}:1.0.0",
                        "compute": {"cpu": "250m", "mem": "256Mi"},
                        "readiness_probe": {"http_get": {"path": "/healthz", "port": 8080}},
                    }
                ],
            },
            "autoscaling": {"min_replicas": i % 2, "max_replicas": 10},
        }
        for i in range(n_apis)
    ]
    (program / "stacks" / "Pulumi.bench.yaml").write_text(yaml.safe_dump(config))
    return program


def depth(plan: dict) -> int:
    """Longest dependency chain in the plan (parents count as dependencies)."""
    edges: dict[str, set[str]] = {}
    for r in plan["resources"]:
        deps = set(r.get("dependencies") or [])
        for urns in (r.get("property_dependencies") or {}).values():
            deps.update(urns)
        if r.get("parent"):
            deps.add(r["parent"])
        edges[r["urn"]] = deps

    @functools.cache
    def longest(urn: str) -> int:
        return 1 + max((longest(d) for d in edges.get(urn, ()) if d in edges), default=0)

    sys.setrecursionlimit(10_000)
    return max(longest(u) for u in edges)


def run_once(program: Path, plan_file: Path, source: Path | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one `cortex plan` process."""
    env = dict(os.environ)
    if source is not None:
        env["CORTEX_BENCH_SOURCE"] = str(source.resolve())
    argv = ["plan", str(program), "--stack", "bench", "--json", str(plan_file)]
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", _PROBE, *argv], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    # wait4: this child's own resource usage (RUSAGE_CHILDREN would be the maximum over all children).
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read() if child.stderr else ""
    if child.returncode != 0 or "PROBE " not in stderr:
        raise SystemExit(f"cortex plan failed ({child.returncode}):\n{stderr}")
    where = next(line for line in stderr.splitlines() if line.startswith("PROBE ")).split(" ", 4)[4]
    if source is not None and not where.startswith(str(source.resolve())):
        raise SystemExit(f"ran {where}, not the package under {source}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


_PROBE = """
import os, runpy, sys, time
source = os.environ.get("CORTEX_BENCH_SOURCE")
if source:  # run that tree's cortex_iac: drop the editable install's finder, put the tree first
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    sys.path.insert(0, source)
start, cpu = time.perf_counter(), time.process_time()
sys.argv = ["cortex", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("cortex_iac.cli", run_name="__main__")
except SystemExit as e:
    code = e.code
print(f"PROBE {time.perf_counter() - start:.4f} {time.process_time() - cpu:.4f} {int('pulumi' in sys.modules)} "
      f"{sys.modules['cortex_iac'].__file__}", file=sys.stderr)
sys.exit(code)
"""


def diff_cost(source: Path | None, repeat: int) -> None:
    """Wall time of `cortex diff` / `cortex cost` processes and whether they import Pulumi."""
    plans = REPO / "tests" / "plan" / "fixtures" / "stack"
    env = dict(os.environ)
    if source is not None:
        env["CORTEX_BENCH_SOURCE"] = str(source.resolve())
    commands = {
        "cortex diff --format markdown": ["diff", str(plans / "base.json"), str(plans / "vpc-cidr.json"), "--format", "markdown"],
        "cortex cost": ["cost", str(plans / "base.json")],
    }
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"source: {source or REPO}")
    print(f"| command | process wall time (median of {repeat}) | CPU time in the process | imports pulumi |")
    print("|---|---:|---:|---|")
    for label, argv in commands.items():
        walls, inner, imported = [], [], set()
        for _ in range(repeat):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", _PROBE, *argv], env=env, capture_output=True, text=True, check=True)
            walls.append(time.perf_counter() - start)
            probe = next(line for line in done.stderr.splitlines() if line.startswith("PROBE "))
            _, _seconds, cpu_seconds, has_pulumi, where = probe.split(" ", 4)
            if source is not None and not where.startswith(str(source.resolve())):
                raise SystemExit(f"ran {where}, not the package under {source}")
            inner.append(float(cpu_seconds))
            imported.add(has_pulumi == "1")
        print(f"| `{label}` | {statistics.median(walls):.2f} s | {statistics.median(inner):.2f} s | "
              f"{'yes' if True in imported else 'no'} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apis", type=int, nargs="+", default=[1, 10, 100, 300])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--diff-cost", action="store_true", help="time cortex diff / cortex cost instead")
    parser.add_argument("--source", type=Path, default=None, help="another source tree's cortex_iac to run")
    parser.add_argument("--keep-plans", type=Path, default=None, help="write each size's plan to DIR/plan-<N>.json")
    args = parser.parse_args()
    if args.diff_cost:
        diff_cost(args.source, args.repeat)
        return

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"source: {args.source or REPO}")
    print(f"| APIs | resources | wall time (median of {args.repeat}) | CPU time (median) | peak RSS | "
          "dependency depth | load average |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    if args.keep_plans is not None:
        args.keep_plans.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.apis):
            program = make_program(Path(tmp), n)
            plan_file = Path(tmp) / f"plan-{n}.json"
            load = os.getloadavg()[0]
            walls, cpus, peaks = [], [], []
            for _ in range(args.repeat):
                wall, cpu, peak = run_once(program, plan_file, args.source)
                walls.append(wall)
                cpus.append(cpu)
                peaks.append(peak)
            plan = json.loads(plan_file.read_text())
            if args.keep_plans is not None:
                shutil.copy(plan_file, args.keep_plans / f"plan-{n}.json")
            print(
                f"| {n} | {len(plan['resources'])} | {statistics.median(walls):.2f} s | "
                f"{statistics.median(cpus):.2f} s | {max(peaks)} MiB | {depth(plan)} | {load:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
