"""Settings: file, environment, flags; and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config
from gateway.config import ConfigError, Settings, load

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_design_values() -> None:
    s = load(None, {})
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8888)
    assert s.upstream.url == "http://127.0.0.1:11434"
    assert (s.model.context_window, s.model.reserve_completion, s.model.tokenizer) == (8192, 1024, "cl100k_base")
    assert s.identity.user_headers == ["X-OpenWebUI-User-Id", "X-User-Id"]


def test_shipped_config_toml_is_exactly_the_defaults() -> None:
    assert load(ROOT / "config.toml", {}) == Settings()


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    text = '[server]\nport = 9000\nhost = "0.0.0.0"\n[model]\ncontext_window = 4096\n[auth]\nkeys = {"sk-1" = "ann"}\n'
    path = write(tmp_path, text)
    s = load(path, {"GATEWAY_SERVER_PORT": "9100", "GATEWAY_MODEL_CONTEXT_WINDOW": "16384"}, {"server": {"port": 9200}})
    assert (s.server.host, s.server.port, s.model.context_window) == ("0.0.0.0", 9200, 16384)


def test_environment_values_take_the_key_type() -> None:
    s = load(
        None,
        {
            "GATEWAY_UPSTREAM_TIMEOUT_S": "12.5",
            "GATEWAY_RETRIEVAL_RELEVANCE_THRESHOLD": "0.3",
            "GATEWAY_IDENTITY_USER_HEADERS": "X-A, X-B",
            "GATEWAY_IDENTITY_CONVERSATION_HEADERS": '["X-C"]',
            "GATEWAY_MEMORY_QDRANT_URL": "http://q:6333",
        },
    )
    assert s.upstream.timeout_s == 12.5
    assert s.retrieval.relevance_threshold == 0.3
    assert s.identity.user_headers == ["X-A", "X-B"]
    assert s.identity.conversation_headers == ["X-C"]
    assert s.memory.qdrant_url == "http://q:6333"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nprot = 1\n", "unknown key `prot` in [server]"),
        ("[sever]\nport = 1\n", "unknown section [sever]"),
        ('[server]\nport = "x"\n', "[server] port: Expected `int`, got `str`"),
        ("[server]\nport = 70000\n", "[server] port: Expected `int` <= 65535"),
        ("[model]\ncontext_window = 2048\nreserve_completion = 4096\n", "reserve_completion must be smaller"),
        ("[retrieval]\ndense_weight = 0\nlexical_weight = 0\n", "cannot both be 0"),
        ("[retrieval]\nlexical_weight = -1\n", "[retrieval] lexical_weight: Expected `float` >= 0"),
        ("server = 3\n", "[server] must be a table"),
        ("[server\n", "invalid TOML"),
    ],
)
def test_file_errors_name_the_key_and_the_file(tmp_path: Path, toml: str, message: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as caught:
        load(path, {})
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GATEWAY_SERVER_PROT": "1"}, "GATEWAY_SERVER_PROT: no such setting"),
        ({"GATEWAY_SERVER_PORT": "x"}, "GATEWAY_SERVER_PORT: [server] port: Expected `int`"),
        ({"GATEWAY_SERVER_PORT": "-1"}, "GATEWAY_SERVER_PORT: [server] port: Expected `int` >= 0"),
        (
            {"GATEWAY_IDENTITY_USER_HEADERS": "[oops"},
            "GATEWAY_IDENTITY_USER_HEADERS: [identity] user_headers is not a JSON",
        ),
    ],
)
def test_environment_errors_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        load(None, environ)


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--port: \[server\] port"):
        load(None, {}, {"server": {"port": 99999}})


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "nope.toml", {})


def test_where_the_config_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert config.find_config(None, {}) is None
    (tmp_path / "config.toml").write_text("")
    assert config.find_config(None, {}) == Path("config.toml")
    assert config.find_config(None, {"GATEWAY_CONFIG": "/etc/g.toml"}) == Path("/etc/g.toml")
    assert config.find_config("x.toml", {"GATEWAY_CONFIG": "/etc/g.toml"}) == Path("x.toml")


def test_a_network_address_without_api_keys_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match=r"host 0.0.0.0 would serve every user's memory .* \[auth\] keys"):
        load(path, {})
    assert load(path, {"GATEWAY_AUTH_OPEN_NETWORK": "true"}).auth.open_network
    assert load(path, {"GATEWAY_AUTH_KEYS": '{"sk-1": "ann"}'}).auth.keys == {"sk-1": "ann"}
    with pytest.raises(ConfigError, match=r"GATEWAY_AUTH_KEYS: .* not a JSON object"):
        load(path, {"GATEWAY_AUTH_KEYS": "sk-1=ann"})
