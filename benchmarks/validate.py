"""How long `cortex validate` takes for a large API file (issue: a 1 MB file must validate in < 1 s).

Writes a RealtimeAPI file of about 1 MB (20,000 env entries) and one just under the 4 MiB limit, then times
`load_apis` + the deployment checks in-process (best of 5) and the whole `cortex validate` command
(one run, Python start-up included).

    .venv/bin/python benchmarks/validate.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from cortex_iac.specs import load_apis
from cortex_iac.specs.deployment import deployment_problems


def api_file(directory: Path, entries: int) -> Path:
    env = {f"K{i}": "v" * 40 for i in range(entries)}
    path = directory / f"api-{entries}.yaml"
    path.write_text(yaml.safe_dump([{"name": "a", "kind": "RealtimeAPI",
                                     "pod": {"containers": [{"name": "api", "image": "nginx", "env": env}]}}]))
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for entries in (20_000, 70_000):
            path = api_file(Path(tmp), entries)
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                deployment_problems(None, load_apis(path))
                best = min(best, time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "cortex_iac.cli", "validate", str(path)], check=True,
                           capture_output=True)
            command = time.perf_counter() - start
            print(f"| {path.stat().st_size / 1e6:.2f} MB | {best:.3f} s | {command:.2f} s |")


if __name__ == "__main__":
    main()
