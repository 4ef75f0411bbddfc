from __future__ import annotations

import subprocess
import sys

import cortex_iac.specs as specs


def test_public_names_resolve() -> None:
    assert len(set(specs.__all__)) == len(specs.__all__)
    for name in specs.__all__:
        assert getattr(specs, name) is not None


def test_specs_import_no_pulumi() -> None:
    code = (
        "import sys, cortex_iac.specs, cortex_iac.instance_types; "
        "print(any(m.split('.')[0].startswith('pulumi') for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
