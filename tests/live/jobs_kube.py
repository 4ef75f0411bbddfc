"""The Kubernetes API the live tests run the job gateway against: the product's local stand-in
(:mod:`cortex_iac.jobs.local`, also what ``cortex serve`` runs), with every posted object validated
by ``kubernetes-validate --strict`` (a refusal is a 422 and lands in ``errors``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cortex_iac.jobs.local import Container, Job, LocalKube, Pod, local_kube
from tests.kube import validate_object

FakeKube = LocalKube

__all__ = ["Container", "FakeKube", "Job", "Pod", "fake_kube"]


def _strict(obj: dict[str, Any]) -> None:
    validate_object(obj)


@contextlib.contextmanager
def fake_kube(tmp: Path) -> Iterator[LocalKube]:
    """The stand-in on a free port, validating strictly; every process it started is stopped after."""
    with local_kube(tmp, check=_strict) as kube:
        yield kube
