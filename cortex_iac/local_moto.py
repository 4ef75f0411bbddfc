"""moto's server with each DynamoDB operation atomic, as DynamoDB's are: the local AWS of `cortex serve`
and of the live tests (``python -m cortex_iac.local_moto -H 127.0.0.1 -p PORT``, moto_server's options).

moto's server answers requests on threads, and its DynamoDB backend is not thread-safe: two
``UpdateItem ADD`` on one item at once can both read the old value (one increment is lost), and
``TransactWriteItems`` copies whole tables to roll back to, so a concurrent write lands in the copy's
past and is undone when that transaction is cancelled (or the copy fails with "dictionary changed size
during iteration"). A BatchAPI's workers count batches with exactly those calls, so under load a job
ended with a batch missing from its counts. Here every call into the DynamoDB backend holds one
process-wide lock (reentrant: transactions call put/update/delete), which makes each operation
atomic; SQS and S3 are left as moto has them. Development only: nothing of it is deployed.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.RLock()


def installed() -> bool:
    """Whether moto's server (``pip install 'moto[server]'``) can be run."""
    try:
        return importlib.util.find_spec("moto.server") is not None and importlib.util.find_spec("flask") is not None
    except ModuleNotFoundError:
        return False


def command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The command that runs this server on ``host:port``, in this interpreter."""
    return [sys.executable, "-m", "cortex_iac.local_moto", "-H", host, "-p", str(port)]


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return call


def make_dynamodb_atomic() -> None:
    """Wrap every public method of moto's DynamoDB backend in the lock (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_cortex_atomic", False):
        return
    for name, member in inspect.getmembers(DynamoDBBackend, inspect.isfunction):
        if not name.startswith("_"):
            setattr(DynamoDBBackend, name, _locked(member))
    DynamoDBBackend._cortex_atomic = True  # type: ignore[attr-defined]


def main() -> None:
    """moto_server's command line, with DynamoDB made atomic first."""
    make_dynamodb_atomic()
    from moto.server import main as moto_main

    moto_main()


if __name__ == "__main__":
    main()
