"""The runtime image's Dockerfile (it cannot be built here: no Docker engine) stays in step with what
the tests run: the same package versions, a pinned base, a non-root user, and only the runtime copied."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import cortex_iac.serving

DOCKERFILE = (Path(cortex_iac.serving.__file__).parent / "Dockerfile").read_text()


def test_base_image_is_a_pinned_slim_python() -> None:
    base = re.search(r"^FROM (\S+)$", DOCKERFILE, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base.group(1))


def test_installed_packages_are_the_versions_the_tests_run() -> None:
    pins = dict(re.findall(r"^\s+([a-z0-9-]+)==(\S+?)(?: \\)?$", DOCKERFILE, re.MULTILINE))
    assert set(pins) == {"starlette", "uvicorn", "prometheus-client", "uvloop", "httptools",
                         # the AsyncAPI gateway and worker: boto3 and what it needs; the job gateway
                         # and worker: also httpx and pydantic
                         "boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3",
                         "httpx", "pydantic"}
    installed = {}
    for name in pins:
        try:
            installed[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed[name] = "not installed (the image has it: add it to pyproject's serve extra)"
    assert pins == installed


def test_runs_as_a_non_root_user_from_tmp() -> None:
    assert re.search(r"^USER 10001:10001$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^WORKDIR /tmp$", DOCKERFILE, re.MULTILINE)
    assert 'CMD ["python", "-m", "cortex_iac.serving"]' in DOCKERFILE


def test_copies_only_files_that_exist_in_the_build_context() -> None:
    context = Path(cortex_iac.serving.__file__).parents[1]  # the cortex_iac/ directory
    sources = re.findall(r"^COPY (\S+) ", DOCKERFILE, re.MULTILINE)
    assert sources == ["errors.py", "runtime_contract.py", "serving/", "queue/", "jobs/"]
    assert all((context / source).exists() for source in sources)


def test_the_runtime_imports_nothing_the_image_lacks() -> None:
    # The image holds cortex_iac/errors.py, runtime_contract.py and serving/ only, and no pydantic, yaml or pulumi.
    code = (
        "import sys, cortex_iac.serving.__main__, cortex_iac.serving.server; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cortex_iac', 'pydantic', 'yaml', 'pulumi', 'packaging'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    outside = [m for m in loaded if m not in ("cortex_iac", "cortex_iac.errors", "cortex_iac.runtime_contract") and not m.startswith("cortex_iac.serving")]
    assert outside == []


def test_the_async_gateway_and_worker_import_nothing_the_image_lacks() -> None:
    # The image adds cortex_iac/queue/ and boto3 for them; still no pydantic, yaml or pulumi.
    code = (
        "import sys, cortex_iac.queue.gateway, cortex_iac.queue.worker; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cortex_iac', 'pydantic', 'yaml', 'pulumi', 'packaging', 'moto'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    allowed = ("cortex_iac", "cortex_iac.errors", "cortex_iac.runtime_contract")
    outside = [m for m in loaded if m not in allowed and not m.startswith(("cortex_iac.serving", "cortex_iac.queue"))]
    assert outside == []
