from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import processes

pytest_plugins = ["tests.browser"]  # `browser`: Debian's chromium through Playwright, for the pages' tests

# Machines without internet keep tiktoken's encodings beside the repository (CI sets this too).
_SHARED_TIKTOKEN = processes.ROOT.parent / "shared" / "tiktoken"
if _SHARED_TIKTOKEN.is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_SHARED_TIKTOKEN))


DEFAULT_CACHE = {"slots": 1, "rate": 1000, "answer_words": 0, "eval_count": "prompt"}


class Fake:
    """The running fake Ollama: its URL and what it saw."""

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        httpx.delete(self.url + "/_fake/requests")
        httpx.put(self.url + "/_fake/cache", json=DEFAULT_CACHE)
        self.embedding(delay=0, down=False)

    def evaluations(self, model: str = "qwen3:4b") -> list[tuple[int, int]]:
        """What the fake's prompt cache saw, request by request: (prompt tokens, evaluated afresh)."""
        seen = httpx.get(self.url + "/_fake/cache").json()["models"].get(model, {}).get("seen", [])
        return [(prompt, evaluated) for prompt, evaluated in seen]

    def embedding(self, *, delay: float = 0, down: bool = False) -> None:
        httpx.put(self.url + "/_fake/embed", json={"delay": delay, "down": down})

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = httpx.get(self.url + "/_fake/requests").json()
        return result

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = httpx.get(self.url + "/_fake/stats").json()
        return result


@pytest.fixture(scope="session")
def fake_session() -> Iterator[Fake]:
    with processes.fake_ollama() as url:
        yield Fake(url)


@pytest.fixture
def fake(fake_session: Fake) -> Fake:
    fake_session.reset()
    return fake_session


@pytest.fixture(scope="session")
def gateway_url(fake_session: Fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with processes.gateway(fake_session.url, tmp_path_factory.mktemp("data")) as url:
        yield url
