"""Start the runtime as a real process (``python -m cortex_iac.serving``) on 127.0.0.1 for live tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

HANDLERS = Path(__file__).parent / "handlers"
_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)(?:, metrics on http://127\.0\.0\.1:(\d+))?")


class RuntimeProcess:
    """A runtime process whose stdout (JSON lines) is collected by a reader thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cortex_iac.serving"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port: int | None = None
        self.metrics_port: int | None = None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        assert self.port is not None, "the server has not reported its port"
        return f"http://127.0.0.1:{self.port}"

    def records(self) -> list[dict[str, Any]]:
        """The log lines so far, parsed (every line must be JSON)."""
        return [json.loads(line) for line in list(self.lines)]

    def wait_records(self, match: Callable[[dict[str, Any]], bool], count: int = 1,
                     timeout: float = 5.0) -> list[dict[str, Any]]:
        """The log records ``match`` accepts, once there are ``count`` of them or ``timeout`` passed
        (what there is then). The reader thread may still be reading a line the server wrote
        before it answered."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records() if match(r)]
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def wait_listening(self, timeout: float = 20.0) -> None:
        """Block until uvicorn reports its port, failing if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = _LISTENING.search(line)
                if match:
                    self.port = int(match.group(1))
                    self.metrics_port = int(match.group(2)) if match.group(2) else None
                    return
            if self.process.poll() is not None:
                raise AssertionError(f"runtime exited with {self.process.returncode}:\n" + "\n".join(self.lines))
            time.sleep(0.02)
        raise AssertionError("runtime did not start listening in time:\n" + "\n".join(self.lines))

    @property
    def metrics_url(self) -> str:
        """``/metrics`` on the metrics port if the runtime has one, else on its port."""
        port = self.metrics_port if self.metrics_port is not None else self.port
        return f"http://127.0.0.1:{port}/metrics"

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until ``/readyz`` answers 200."""
        self.wait_listening(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                raise AssertionError(f"runtime exited with {self.process.returncode}:\n" + "\n".join(self.lines))
            time.sleep(0.05)
        raise AssertionError("runtime did not become ready in time:\n" + "\n".join(self.lines))

    def terminate(self) -> None:
        """Send SIGTERM (the kubelet's stop signal)."""
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit and for its output to be read; return the exit code."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        """Make sure the process is gone (test cleanup)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()


def start(handler: str | Path, **settings: Any) -> RuntimeProcess:
    """Start a runtime for ``handler`` (a file name under ``handlers/`` or a path) on a free port.

    ``settings`` are RuntimeConfig fields (``max_batch_size=8``), passed as ``CORTEX_*`` variables.
    """
    path = Path(handler) if Path(handler).is_absolute() else HANDLERS / handler
    env = {"CORTEX_HANDLER_PATH": str(path), "CORTEX_HOST": "127.0.0.1", "CORTEX_PORT": "0"}
    for name, value in settings.items():
        env["CORTEX_" + name.upper()] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return RuntimeProcess(env)
