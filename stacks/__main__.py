"""The ready program: `pulumi up -s dev` declares the cluster and APIs of stacks/Pulumi.dev.yaml.

Paths in the stack config are relative to this directory (where the Pulumi.<stack>.yaml files are).
"""

from pathlib import Path

from cortex_iac.program import deploy

deploy(Path(__file__).resolve().parent)
