"""``python -m cortex_iac.serving``: the API pod's command; settings come from ``CORTEX_*`` variables."""

from __future__ import annotations

import os
import sys

from cortex_iac.serving.config import RuntimeConfig, RuntimeConfigError
from cortex_iac.serving.server import run


def main() -> int:
    """Read the config from the environment and serve; a bad setting is one line on stderr, exit 2."""
    try:
        config = RuntimeConfig.from_env(os.environ)
    except RuntimeConfigError as error:
        print(f"cortex serving: {error}", file=sys.stderr)
        return 2
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
