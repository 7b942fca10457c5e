"""Every command and example in the README, run as written against a running gateway.

Only the address changes: the examples say 127.0.0.1:8888, the test's gateway listens on a free port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import processes, readme
from tests.conftest import Fake

DEFAULT = "127.0.0.1:8888"


def test_the_readme_has_its_two_commands_and_examples() -> None:
    assert readme.command("run").endswith("gateway serve")
    assert readme.command("test").endswith("pytest")
    languages = sorted(lang for lang, _ in readme.blocks("example"))
    assert languages == ["bash", "bash", "python", "python", "python", "python"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (processes.ROOT / ".ci" / "run").read_text()
    assert "tests/readme.py test" in ci


@pytest.fixture(scope="module")
def served(fake_session: Fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The README's run command, as written, with the port and upstream given by environment."""
    port = processes.free_port()
    env = {
        **os.environ,
        **processes.gateway_env(fake_session.url, tmp_path_factory.mktemp("data")),
        "GATEWAY_SERVER_PORT": str(port),
    }
    process = subprocess.Popen(
        ["bash", "-c", readme.command("run")], cwd=processes.ROOT, env=env, start_new_session=True
    )
    try:
        processes.wait_for(f"http://127.0.0.1:{port}/health", process, timeout=300)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.parametrize("index", range(6))
def test_examples_run_as_written(served: str, index: int, tmp_path: Path) -> None:
    lang, code = readme.blocks("example")[index]
    code = code.replace(DEFAULT, served)
    if lang == "python":
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    else:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "echo:" in result.stdout  # the fake Ollama's answer came back through the gateway
    assert "error" not in result.stdout


def test_configure_example_runs_as_written(fake_session: Fake, tmp_path: Path) -> None:
    [(_, code)] = readme.blocks("configure")
    port = processes.free_port()
    code = code.strip().replace("--port 9000", f"--port {port}")
    env = {**os.environ, **processes.gateway_env(fake_session.url, tmp_path)}
    del env["GATEWAY_UPSTREAM_URL"], env["GATEWAY_MODEL_DEFAULT"]
    process = subprocess.Popen(["bash", "-c", code], cwd=processes.ROOT, env=env, start_new_session=True)
    try:
        processes.wait_for(f"http://127.0.0.1:{port}/health", process, timeout=120)
        status = httpx.get(f"http://127.0.0.1:{port}/status").json()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert status["upstream"]["url"] == "http://gpu-box:11434"
    assert status["model"]["context_window"] == 16384


def test_memory_api_example_runs_as_written(served: str) -> None:
    [(_, code)] = readme.blocks("memory")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code.replace(DEFAULT, served)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    *_, found, exported = json_values(result.stdout)  # curl prints each answer without a newline
    assert found["results"][0]["content"] == "Ann is allergic to peanuts"
    assert exported["core"][0]["value"] == "Name: Ann. Lives in Lyon."


def json_values(text: str) -> list[Any]:
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text.strip()):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values


def test_memory_commands_run_as_written(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data") as url:
        httpx.post(url + "/memory/add", json={"content": "Ann plays the cello", "user_id": "ann"})
    [(_, code)] = readme.blocks("commands")
    env = {**os.environ, **processes.gateway_env(fake.url, tmp_path / "data")}
    written = processes.ROOT / "ann-memory.json"
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=processes.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(written.read_text())["notes"][0]["content"] == "Ann plays the cello"
    finally:
        written.unlink(missing_ok=True)
    assert "✓ embedding model" in result.stdout
    assert "0 core blocks and 1 notes for user ann-copy" in result.stdout
    assert "ann: 0 conversations summarised" in result.stdout


def test_forget_command_runs_as_written(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data") as url:
        said = {"messages": [{"role": "user", "content": "We leave for Lyon on Friday."}]}
        httpx.post(url + "/v1/chat/completions", json=said, headers={"X-User-Id": "ann", "X-Conversation-Id": "trip"})
    command = readme.command("forget")
    env = {**os.environ, **processes.gateway_env(fake.url, tmp_path / "data")}
    result = subprocess.run(
        command, shell=True, cwd=processes.ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "gateway: forgot 2 messages of conversation trip of user ann\n"


def test_reindex_command_runs_as_written(fake: Fake, tmp_path: Path) -> None:
    with processes.gateway(fake.url, tmp_path / "data") as url:
        body = {"messages": [{"role": "user", "content": "remember the lighthouse"}]}
        httpx.post(url + "/v1/chat/completions", json=body)
    [(_, code)] = readme.blocks("reindex")
    env = {**os.environ, **processes.gateway_env(fake.url, tmp_path / "data")}
    result = subprocess.run(
        ["bash", "-c", code.strip()], cwd=processes.ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "indexed 2 messages with meaning and words" in result.stdout


BENCH_OUTPUT = [  # each block's, in order
    "| memory on / LiteLLM |",
    "| gateway, memory off |",
    "| hybrid, defaults |",
    "| request | status | its time s |",
    "| minute | memory | requests |",
]


@pytest.mark.parametrize("index", range(len(BENCH_OUTPUT)))
def test_benchmark_commands_run_as_written(index: int) -> None:
    """Each benchmark runs as written; BENCH_QUICK makes the slow ones small."""
    _, code = readme.blocks("bench")[index]
    env = {**os.environ, "BENCH_QUICK": "1"}
    result = subprocess.run(
        ["bash", "-c", code.strip()], cwd=processes.ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert BENCH_OUTPUT[index] in result.stdout
    assert len(readme.blocks("bench")) == len(BENCH_OUTPUT)
