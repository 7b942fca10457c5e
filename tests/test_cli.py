"""The `gateway` command: start-up failures are one clear line, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from gateway.index.edge import EdgeIndex
from tests import processes
from tests.conftest import Fake
from tests.processes import ROOT


def run_gateway(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unknown_config_key_stops_start_up_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[server]\nprot = 9000\n")
    result = run_gateway("serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"gateway: config error: {path}: unknown key `prot` in [server]"


def test_wrong_type_in_environment_names_the_variable() -> None:
    result = run_gateway("serve", env={"GATEWAY_SERVER_PORT": "eighty"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gateway: config error: GATEWAY_SERVER_PORT: [server] port: Expected `int`, got `str` (got 'eighty')"
    ]


def test_config_from_environment_variable_path(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('[model]\ncontext_window = "big"\n')
    result = run_gateway("serve", env={"GATEWAY_CONFIG": str(path)}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"gateway: config error: {path}: [model] context_window: Expected `int`, got `str`"


def test_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_gateway("serve", "--port", str(port))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"gateway: cannot listen on 127.0.0.1:{port}: the port is already in use")


def test_check_passes_when_all_is_well(fake: Fake, tmp_path: Path) -> None:
    env = processes.gateway_env(fake.url, tmp_path / "data")
    result = run_gateway("check", env=env)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "✓ config",
        "✓ Ollama",
        "✓ chat model",
        "✓ embedding model",
        "✓ data dir",
        "✓ tokenizer",
    ]
    assert "nomic-embed-text gives 64 dimensions" in result.stdout


async def test_check_finds_an_index_built_with_another_model(fake: Fake, tmp_path: Path) -> None:
    index = await EdgeIndex.open(tmp_path / "data" / "index")
    await index.add_dense(3)  # as another embedding model left it
    await index.close()
    result = run_gateway("check", env=processes.gateway_env(fake.url, tmp_path / "data"))
    assert result.returncode == 1
    assert (
        "✗ embedding model: nomic-embed-text gives 64 dimensions but the index has 3: run `gateway reindex`"
        in result.stdout
    )


def test_check_says_what_fails_and_how_to_fix_it(fake: Fake, tmp_path: Path) -> None:
    env = {**processes.gateway_env(fake.url, tmp_path / "data"), "GATEWAY_EMBEDDING_MODEL": "mxbai-embed-large"}
    result = run_gateway("check", env=env)
    assert result.returncode == 1
    assert "✗ embedding model: mxbai-embed-large is not in Ollama: `ollama pull mxbai-embed-large`" in result.stdout

    down = processes.gateway_env(f"http://127.0.0.1:{processes.free_port()}", tmp_path / "data")
    result = run_gateway("check", env=down)
    assert result.returncode == 1
    assert "✗ Ollama: Cannot reach Ollama at" in result.stdout
    assert "`ollama serve`" in result.stdout
