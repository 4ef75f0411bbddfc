"""The model-serving runtime that runs a user's ``class Handler`` in API pods and under ``cortex serve``.

Importing this package (and ``config``) needs nothing beyond the standard library, so code that only
renders a pod's ``CORTEX_*`` variables can use ``RuntimeConfig.to_env``; ``server.run`` needs the
``serve`` extra (Starlette, uvicorn, prometheus-client).
"""

from __future__ import annotations

from cortex_iac.serving.config import RuntimeConfig, RuntimeConfigError

__all__ = ["RuntimeConfig", "RuntimeConfigError"]
