"""Start the gateway and the fake Ollama as real processes, for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def running(
    args: list[str],
    ready_url: str,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    cwd: Path = ROOT,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m ...args` from the repository root (or `cwd`) until the block ends (stderr to `log`)."""
    with running_command([sys.executable, "-m", *args], ready_url, env, log, cwd) as process:
        yield process


@contextmanager
def running_command(
    argv: list[str],
    ready_url: str,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    cwd: Path = ROOT,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a command until the block ends, once `ready_url` answers."""
    full_env = {**os.environ, **(env or {})}
    stderr = log.open("wb") if log else None
    process = subprocess.Popen(argv, cwd=cwd, env=full_env, stderr=stderr)
    try:
        wait_for(ready_url, process)
        yield process
    finally:
        stop(process)
        if stderr:
            stderr.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill if it has not gone within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def fake_ollama(port: int | None = None) -> Iterator[str]:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with running(["tests.fake_ollama", str(port)], url + "/api/version"):
        yield url


def gateway_env(upstream: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "GATEWAY_UPSTREAM_URL": upstream,
        "GATEWAY_MODEL_DEFAULT": "qwen3:4b",
        "GATEWAY_MEMORY_DATA_DIR": str(data_dir),
        "GATEWAY_SERVER_LOG_LEVEL": "warning",
        **extra,
    }


@contextmanager
def gateway(
    upstream: str,
    data_dir: Path,
    port: int | None = None,
    log: Path | None = None,
    settings: Mapping[str, str] | None = None,
    **extra: str,
) -> Iterator[str]:
    """The gateway on `upstream`, with `settings` and `extra` as its environment (GATEWAY_...)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = gateway_env(upstream, data_dir, **(settings or {}), **extra)
    with running(["gateway", "serve", "--port", str(port)], url + "/health", env, log):
        yield url


def command(*args: str, data_dir: Path, upstream: str) -> subprocess.CompletedProcess[str]:
    """Run an offline `gateway` command (import, export, reindex, consolidate) on `data_dir`."""
    env = {**os.environ, **gateway_env(upstream, data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
