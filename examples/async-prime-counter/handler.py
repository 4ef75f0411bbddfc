"""A prime counter for the cortex_iac serving runtime, served as an AsyncAPI.

Counting the primes below a million by trial division takes pure Python a few seconds: a request too slow
to hold an HTTP connection open for comfortably, which is what an AsyncAPI is for (submit, then poll).
"""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse

# About 3 s for 1,000,000 on one core; the list of primes below 10 million is 665k ints (~25 MB).
MAX_LIMIT = 10_000_000


class Handler:
    """Counts the primes below ``limit``, given as ``{"limit": <int>}``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.max_limit = int(config.get("max_limit", MAX_LIMIT))

    def handle_post(self, payload: Any) -> dict[str, int] | JSONResponse:
        """Return ``{"limit": n, "primes": <how many primes are < n>, "largest": <the largest, or 0>}``,
        or 400 for a limit that is not a whole number from 2 to ``max_limit``."""
        limit = payload.get("limit") if isinstance(payload, dict) else None
        if not isinstance(limit, int) or isinstance(limit, bool) or not 2 <= limit <= self.max_limit:
            return JSONResponse({"error": f"expected {{\"limit\": n}} with a whole number n from 2 to {self.max_limit}"}, 400)
        # Trial division by the primes found so far: deliberately plain Python, so a request takes seconds.
        primes: list[int] = []
        for n in range(2, limit):
            root = math.isqrt(n)
            for p in primes:
                if p > root:
                    primes.append(n)
                    break
                if n % p == 0:
                    break
            else:
                primes.append(n)
        return {"limit": limit, "primes": len(primes), "largest": primes[-1] if primes else 0}
