"""The runtime's settings: re-exported from the leaf module :mod:`cortex_iac.runtime_contract`,
which the renderer (writing the ``CORTEX_*`` variables) and the runtime (reading them) share."""

from __future__ import annotations

from cortex_iac.runtime_contract import RuntimeConfig, RuntimeConfigError

__all__ = ["RuntimeConfig", "RuntimeConfigError"]
