"""The files to deploy the gateway: what can be checked without pulling an image.

The compose file parses and wires Ollama, the gateway and Open WebUI together; the image's command, with the
image's and the compose file's environment, runs here as a plain process and serves as Open WebUI would use
it; the systemd unit starts what the README installs."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from tests import processes
from tests.conftest import Fake

ROOT = processes.ROOT
COMPOSE = ROOT / "deploy" / "compose.yaml"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def interpolated(value: str, given: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}`, as `docker compose` resolves them."""

    def resolve(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if given.get(name):
            return given[name]
        assert op != ":?", f"compose would stop: {rest}"
        return rest if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", resolve, value)


def dockerfile() -> tuple[dict[str, str], list[str]]:
    """The image's environment (its ENV lines) and its command (CMD)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    command: list[str] = []
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            env.update(part.partition("=")[::2] for part in shlex.split(rest))
        elif word == "CMD":
            command = json.loads(rest)
    return env, command


def test_compose_wires_ollama_the_gateway_and_open_webui() -> None:
    services = compose()["services"]
    assert set(services) == {"ollama", "gateway", "open-webui"}
    gateway, webui = services["gateway"]["environment"], services["open-webui"]["environment"]
    upstream = urlsplit(gateway["GATEWAY_UPSTREAM_URL"])
    assert (upstream.hostname, upstream.port) == ("ollama", 11434)  # Ollama's service, on Ollama's port
    connection = urlsplit(webui["OPENAI_API_BASE_URL"])
    assert (connection.hostname, connection.port, connection.path) == ("gateway", 8888, "/v1")
    assert "EXPOSE 8888" in (ROOT / "Dockerfile").read_text()
    shared = {"GATEWAY_PROXY_KEY": "sk-shared"}
    assert interpolated(webui["OPENAI_API_KEY"], shared) == interpolated(gateway["GATEWAY_AUTH_PROXY_KEYS"], shared)
    assert webui["ENABLE_FORWARD_USER_INFO_HEADERS"] == "true"
    assert json.loads(webui["OPENAI_API_CONFIGS"])["0"]["headers"] == {"X-OpenWebUI-Task": "{{TASK}}"}
    data_dir = gateway["GATEWAY_MEMORY_DATA_DIR"]
    assert f"gateway:{data_dir}" in services["gateway"]["volumes"]  # memory in a named volume
    assert set(compose()["volumes"]) == {"ollama", "gateway", "open-webui"}
    build = services["gateway"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"


def test_the_images_command_serves_as_compose_runs_it(fake: Fake, tmp_path: Path) -> None:
    image_env, command = dockerfile()
    assert command[0].startswith("/app/")  # the image's venv; here, the repository's
    argv = [str(ROOT / command[0].removeprefix("/app/")), *command[1:]]
    composed = {
        name: interpolated(str(value), {"GATEWAY_PROXY_KEY": "sk-webui-test"})
        for name, value in compose()["services"]["gateway"]["environment"].items()
    }
    port = processes.free_port()
    env = {
        **image_env,
        **composed,
        "GATEWAY_UPSTREAM_URL": fake.url,  # "ollama" resolves only in compose's network
        "GATEWAY_MEMORY_DATA_DIR": str(tmp_path / "data"),  # the volume
        "GATEWAY_SERVER_PORT": str(port),
        "GATEWAY_MODEL_DEFAULT": "qwen3:4b",
    }
    assert env["GATEWAY_SERVER_HOST"] == "0.0.0.0"
    url = f"http://127.0.0.1:{port}"
    with processes.running_command(argv, url + "/health", env):
        webui = {"Authorization": "Bearer sk-webui-test", "X-OpenWebUI-User-Id": "u-1"}
        body = {"model": "qwen3:4b", "messages": [{"role": "user", "content": "hello"}]}
        answer = httpx.post(url + "/v1/chat/completions", json=body, headers=webui)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "echo: hello"
        unnamed = httpx.post(url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-webui-test"})
        assert unnamed.json()["error"]["code"] == "missing_user"
        assert httpx.post(url + "/v1/chat/completions", json=body).status_code == 401


def test_the_systemd_unit_runs_what_the_readme_installs() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((ROOT / "deploy" / "gateway.service").read_text())
    service = unit["Service"]
    assert service["ExecStart"].split() == ["/opt/memory-gateway/.venv/bin/gateway", "serve"]
    assert service["WorkingDirectory"] == "/opt/memory-gateway"
    assert service["Environment"].startswith("GATEWAY_MEMORY_DATA_DIR=")
    assert unit["Install"]["WantedBy"] == "multi-user.target"
