"""Values shared by the component tests."""

from __future__ import annotations

# The digest the recording engine's test mode gives every pushed docker-build image.
FAKE_DIGEST = "sha256:" + "ab" * 32
