"""Start and stop a local OpenAI-compatible ``transformers serve`` process on loopback.

Notebooks and tests use it to put a real HTTP server (and therefore the real ``openai`` client,
retries and concurrency) in front of the tiny offline model; the same spec string then points at
a vLLM server or the OpenAI API without any other change.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Linux only: the server gets SIGTERM if the Python process that started it dies (even by kill -9)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class TransformersServer:
    """``with TransformersServer(model_dir) as server: server.spec`` gives an ``openai:NAME@URL`` spec."""

    def __init__(self, model_dir: str | Path, port: int | None = None, device: str = "cpu",
                 startup_timeout_s: float = 180.0):
        self.model_dir = str(model_dir)
        self.port = port or free_port()
        self.device, self.startup_timeout_s = device, startup_timeout_s
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def spec(self) -> str:
        return f"openai:{self.model_dir}@{self.base_url}"

    def _command(self) -> list[str]:
        cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
        if cli is None:
            raise RuntimeError('the transformers CLI is missing: install the project with pip install -e . '
                               '(it pulls transformers[serving])')
        return [cli, "serve", self.model_dir, "--host", "127.0.0.1", "--port", str(self.port),
                "--device", self.device, "--log-level", "warning"]

    def start(self) -> "TransformersServer":
        self._log = tempfile.NamedTemporaryFile("w+", prefix="pmv2nb-serve-", suffix=".log", delete=False)
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(self._command(), stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        atexit.register(self.stop)  # a notebook kernel that exits without the clean-up cell still stops it
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer within {self.startup_timeout_s:.0f} s:\n"
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        if self._log is None:
            return ""
        return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> "TransformersServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
