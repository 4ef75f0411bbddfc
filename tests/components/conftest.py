"""Fixtures shared by the component tests."""

from __future__ import annotations

from typing import Any

import pytest

from cortex_iac.plan import engine

FAKE_DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def image_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test-mode outputs for an ECR repository (its URL) and a pushed docker-build image (its ref),
    which the engine's generic fakes do not know."""
    generic = engine.fake_outputs

    def fake_outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        out = generic(type_, name, inputs)
        if type_ == "aws:ecr/repository:Repository":
            out["registryId"] = engine.FAKE_ACCOUNT
            out["repositoryUrl"] = f"{engine.FAKE_ACCOUNT}.dkr.ecr.{engine.FAKE_REGION}.amazonaws.com/{inputs['name']}"
        elif type_ == "docker-build:index:Image":
            out["digest"] = FAKE_DIGEST
            out["ref"] = f"{inputs['tags'][0]}@{FAKE_DIGEST}"
        return out

    monkeypatch.setattr(engine, "fake_outputs", fake_outputs)
