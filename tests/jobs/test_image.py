"""The job gateway and worker run from the runtime image, which holds only cortex_iac/errors.py,
runtime_contract.py, serving/ and jobs/: they must import nothing else of cortex_iac (no specs, no
render, no pulumi, no yaml)."""

from __future__ import annotations

import subprocess
import sys


def test_gateway_and_worker_import_only_what_the_image_holds() -> None:
    code = (
        "import sys, cortex_iac.jobs.gateway, cortex_iac.jobs.worker; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('cortex_iac', 'yaml', 'pulumi'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    allowed = ("cortex_iac", "cortex_iac.errors", "cortex_iac.runtime_contract")
    outside = [m for m in loaded if m not in allowed and not m.startswith("cortex_iac.jobs")]
    assert outside == []
    assert "cortex_iac.jobs.gateway" in loaded
