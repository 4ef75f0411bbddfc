"""Security scan (checkov) of every Kubernetes object cortex_iac declares: run by scripts/checkov.

What is scanned is what the commands produce, so objects of new kinds are covered once the commands
produce them: ``cortex plan --manifests`` of the dev and prod stacks, and ``cortex render`` of every
Cortex reference API file (a file whose kind this version cannot render yet is listed as skipped).

Two views, two skip lists (both commented, checked in):
- ``ours``: every object with the user's containers taken out of its pods (what is left runs images
  cortex_iac pins, ``cortex_iac.versions``, or the serving runtime), scanned with ``.checkov.yaml``:
  only checks that are wrong for this platform are skipped.
- ``all``: every object as rendered, scanned with ``.checkov-user-images.yaml``: the same skips plus
  the checks that concern only the user's own containers (their image, its user, its probes).

Exit status: non-zero if a check fails in either view, or an API file fails to render for any other
reason than its kind.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from cortex_iac import versions
from cortex_iac.cli import app
from cortex_iac.render.workload import RUNTIME_COMMAND

REPO = Path(__file__).resolve().parents[1]
# Cortex's reference API files, in the shared/ folder beside the repository (as the tests find them).
REFERENCE_APIS = REPO.parent / "shared" / "cortex-reference" / "apis"
# The runtime image the reference renders name (AsyncAPIs and job APIs need one); an example
# reference, like the stacks' own cortex:runtimeImage.
RENDER_RUNTIME_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cortex-serving:0.1.0"
STACKS = ("dev", "prod")
NOT_RENDERABLE_YET = "cannot be rendered by this version"
# Where a pod spec sits in each kind that has one.
_POD_PATHS = {
    "Deployment": ("spec", "template", "spec"), "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"), "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}


def platform_images() -> set[str]:
    """The images cortex_iac pins or builds itself: every ``*_IMAGE`` of cortex_iac.versions, and the
    serving runtime image as the renders and the stacks name it (its gateway and worker containers)."""
    images = {v for k, v in vars(versions).items() if k.endswith("_IMAGE") and isinstance(v, str)}
    images.add(RENDER_RUNTIME_IMAGE)
    for stack in STACKS:
        config = yaml.safe_load((REPO / "stacks" / f"Pulumi.{stack}.yaml").read_text()) or {}
        image = (config.get("config") or {}).get("cortex:runtimeImage")
        if isinstance(image, str):
            images.add(image)
    return images


def is_ours(container: dict[str, Any], images: set[str]) -> bool:
    """A container cortex_iac controls: a pinned platform image, or the serving runtime."""
    return container.get("image") in images or tuple(container.get("command") or ()) == RUNTIME_COMMAND


def without_user_containers(obj: dict[str, Any], images: set[str]) -> dict[str, Any] | None:
    """``obj`` with only cortex_iac's containers in its pod (None if none is left); others as they are."""
    path = _POD_PATHS.get(str(obj.get("kind")))
    if path is None:
        return obj
    pod: Any = obj
    for key in path:
        pod = pod.get(key) if isinstance(pod, dict) else None
    if not isinstance(pod, dict):
        return obj
    kept = [c for c in pod.get("containers", []) if is_ours(c, images)]
    if not kept:
        return None
    pod["containers"] = kept
    init = [c for c in pod.get("initContainers", []) if is_ours(c, images)]
    if "initContainers" in pod:
        pod["initContainers"] = init
    return obj


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def collect(out: Path) -> tuple[list[Path], list[str]]:
    """Write what the plans and renders produce under ``out/raw``; return the directories and the
    reference files skipped because their kind does not render yet."""
    dirs: list[Path] = []
    skipped: list[str] = []
    for stack in STACKS:
        target = out / "raw" / f"stack-{stack}"
        code, text = _invoke(["plan", str(REPO / "stacks"), "--stack", stack, "--manifests", str(target)])
        if code != 0:
            raise SystemExit(f"cortex plan -s {stack} failed:\n{text}")
        dirs.append(target)
    files = sorted(REFERENCE_APIS.glob("*.yaml"))
    if not files:
        raise SystemExit(f"no reference API files in {REFERENCE_APIS}")
    for path in files:
        target = out / "raw" / f"ref-{path.stem}"
        code, text = _invoke(["render", str(path), "--out", str(target), "--runtime-image", RENDER_RUNTIME_IMAGE])
        if code != 0:
            if NOT_RENDERABLE_YET in text:
                skipped.append(path.name)
                continue
            raise SystemExit(f"cortex render {path} failed:\n{text}")
        dirs.append(target)
    return dirs, skipped


def views(dirs: list[Path], out: Path) -> tuple[Path, Path, int]:
    """Copy every object into ``out/all`` and, without user containers, ``out/ours``."""
    images = platform_images()
    all_dir, ours_dir = out / "all", out / "ours"
    count = 0
    for d in dirs:
        for f in sorted(d.glob("*.yaml")):
            obj = yaml.safe_load(f.read_text())
            name = f"{d.name}.{f.name}"
            (all_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, all_dir / name)
            ours = without_user_containers(obj, images)
            if ours is not None:
                ours_dir.mkdir(parents=True, exist_ok=True)
                (ours_dir / name).write_text(yaml.safe_dump(ours, sort_keys=False))
            count += 1
    return all_dir, ours_dir, count


def scan(directory: Path, config: Path, checkov: Path) -> int:
    cmd = [str(checkov), "--config-file", str(config), "-d", str(directory)]
    print(f"$ checkov --config-file {config.name} -d {directory.name}/", flush=True)
    return subprocess.run(cmd, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", type=Path, default=REPO / ".venv-checkov" / "bin" / "checkov")
    parser.add_argument("--keep", type=Path, help="write the scanned objects here instead of a temporary directory")
    args = parser.parse_args()
    if not args.checkov.exists():
        print(f"{args.checkov}: not found; run bash scripts/setup", file=sys.stderr)
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cortex-checkov-") as tmp:
        out = args.keep if args.keep is not None else Path(tmp)
        dirs, skipped = collect(out)
        all_dir, ours_dir, count = views(dirs, out)
        print(f"{count} objects from {len(dirs)} plans and renders; reference files not renderable yet: "
              f"{', '.join(skipped) or 'none'}", flush=True)
        status = scan(ours_dir, REPO / ".checkov.yaml", args.checkov)
        status |= scan(all_dir, REPO / ".checkov-user-images.yaml", args.checkov)
    print(f"checkov: {'failed' if status else 'passed'} in {time.monotonic() - started:.0f} s")
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
