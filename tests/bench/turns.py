"""A chat's turns as the model pays for them: tokens evaluated afresh, time to first token, memory, evidence.

    .venv/bin/uv run --group bench python -m tests.bench.turns [--turns 40] [--baseline REV]

A user whose LoCoMo conversation was imported (conv-42: 629 turns, through `POST /memory/import`) holds a chat
whose messages are that conversation's questions (categories 1-4), answered by the fake Ollama in about 120
words, streamed, as two kinds of client send it: Open WebUI (the whole history each time, its user and chat
headers) and a client that names its conversation and sends only the new message (`X-Conversation-Id`). The
fake models Ollama's prompt cache (one slot): its `prompt_eval_count` is what a real Ollama would evaluate, and
it reports a prompt-evaluation rate the gateway learns: 700 tokens/s (a laptop) or 5,000 (a gaming GPU).

Per turn: the tokens evaluated afresh and their time at the run's rate, the memory tokens the turn added, and
the share of the question's evidence turns that are in the prompt. Beside it: the same chat straight to the
fake (no memory) and the gateway of an earlier commit (`--baseline`, by default the last one before this
prompt layout), run from a git worktree. `BENCH_QUICK=1`: eight turns at 700 tokens/s, no baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests import processes
from tests.bench import locomo
from tests.bench.locomo_gateway import EMBEDDING_MODEL, import_body, wait_indexed
from tests.bench.results import record

MODEL = "qwen3:4b"
ANSWER_WORDS = 120
RATES = (700, 5000)  # prompt tokens/s: a 4B model on a laptop, and on a gaming GPU
BASELINE = "2b50821"  # the last commit with the memory block as a system message after the system prompt
STYLES = {"full": "whole history (Open WebUI)", "named": "named conversation, new message only"}


@dataclass(frozen=True, slots=True)
class Turn:
    fresh: int  # prompt tokens the model evaluated afresh (the fake's cache)
    prompt: int  # prompt tokens sent (the fake's count)
    memory: int  # memory tokens this turn added
    share: float  # of the question's evidence turns, the share in the prompt


@dataclass(frozen=True, slots=True)
class Setup:
    name: str
    style: str
    rate: int
    code: Path | None  # the gateway's source tree; None: straight to the fake


def chosen_questions(conv: locomo.Conversation, turns: int) -> list[locomo.Question]:
    return [q for q in conv.questions if q.category <= 4 and evidence(conv, q)][:turns]


def evidence(conv: locomo.Conversation, q: locomo.Question) -> list[str]:
    return [conv.by_id[e].text for e in q.evidence if e in conv.by_id]


def share_in(body: dict[str, Any], texts: list[str]) -> float:
    said = "\n".join(m["content"] for m in body["messages"] if isinstance(m.get("content"), str))
    return sum(text in said for text in texts) / len(texts)


def budget_part(header: str, name: str) -> int:
    parts = dict(part.strip().split("=") for part in header.split(";"))
    return int(parts.get(name, 0))


async def through_gateway(
    url: str, fake: str, setup: Setup, conv: locomo.Conversation, questions: list[locomo.Question]
) -> list[Turn]:
    """The chat through a running gateway, as the setup's client sends it."""
    turns: list[Turn] = []
    history: list[dict[str, Any]] = []
    headers = {"X-OpenWebUI-User-Id": conv.sample_id}
    headers["X-OpenWebUI-Chat-Id" if setup.style == "full" else "X-Conversation-Id"] = "turns-bench"
    async with httpx.AsyncClient(base_url=url, timeout=120) as client, httpx.AsyncClient(base_url=fake) as spy:
        for q in questions:
            message = {"role": "user", "content": q.question}
            body = {
                "model": MODEL,
                "messages": [*history, message] if setup.style == "full" else [message],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            text, budget = await streamed(client, body, headers)
            sent = (await spy.get("/_fake/requests")).json()[-1]
            prompt, fresh = await evaluated(spy)
            turns.append(Turn(fresh, prompt, budget_part(budget, "memories"), share_in(sent, evidence(conv, q))))
            history += [message, {"role": "assistant", "content": text}]
    return turns


async def streamed(client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]) -> tuple[str, str]:
    """The answer's text and the gateway's X-Prompt-Budget."""
    text = []
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                text += [choice["delta"].get("content") or "" for choice in json.loads(line[6:])["choices"]]
        return "".join(text), response.headers.get("x-prompt-budget", "")


async def evaluated(fake: httpx.AsyncClient) -> tuple[int, int]:
    """The last prompt's tokens and those the model evaluated afresh, as the fake's prompt cache counted them
    (Ollama itself reports the whole prompt as `prompt_eval_count`)."""
    prompt, fresh = (await fake.get("/_fake/cache")).json()["models"][MODEL]["seen"][-1]
    return int(prompt), int(fresh)


async def straight(fake: str, conv: locomo.Conversation, questions: list[locomo.Question]) -> list[Turn]:
    """The same chat sent to the fake Ollama itself: no memory."""
    turns: list[Turn] = []
    history: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=fake, timeout=60) as client:
        for q in questions:
            messages = [*history, {"role": "user", "content": q.question}]
            body = {"model": MODEL, "messages": messages, "stream": False}
            answer = (await client.post("/api/chat", json=body)).raise_for_status().json()
            prompt, fresh = await evaluated(client)
            turns.append(Turn(fresh, prompt, 0, share_in(body, evidence(conv, q))))
            history = [*messages, answer["message"]]
    return turns


@contextmanager
def fake_ollama() -> Iterator[str]:
    """The fake Ollama with all-MiniLM-L6-v2 embeddings, answers of ANSWER_WORDS words and one cache slot."""
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"FAKE_OLLAMA_EMBEDDER": "minilm", "FAKE_OLLAMA_ANSWER_WORDS": str(ANSWER_WORDS), "FAKE_OLLAMA_SLOTS": "1"}
    with processes.running(["tests.fake_ollama", str(port)], url + "/api/version", env):
        yield url


@contextmanager
def gateway(code: Path, fake: str, data_dir: Path) -> Iterator[str]:
    """A gateway from the source tree `code` (this one, or a baseline's worktree)."""
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    env = processes.gateway_env(fake, data_dir, GATEWAY_EMBEDDING_MODEL=EMBEDDING_MODEL)
    with processes.running(["gateway", "serve", "--port", str(port)], url + "/health", env, cwd=code):
        yield url


async def imported(url: str, conv: locomo.Conversation) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        (await client.post("/memory/import", json=import_body(conv))).raise_for_status()
        await wait_indexed(client, len(conv.turns), dense=True)


def prepared(code: Path, fake: str, conv: locomo.Conversation, folder: Path) -> Path:
    """A data dir with the conversation imported and indexed by the gateway of `code`."""
    data = folder / "imported"
    with gateway(code, fake, data) as url:
        asyncio.run(imported(url, conv))
    return data


def run(setup: Setup, fake: str, conv: locomo.Conversation, questions: list[locomo.Question], data: Path) -> list[Turn]:
    httpx.delete(fake + "/_fake/requests").raise_for_status()  # and the fake's cache
    httpx.put(fake + "/_fake/cache", json={"rate": setup.rate}).raise_for_status()
    if setup.code is None:
        return asyncio.run(straight(fake, conv, questions))
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "data"
        shutil.copytree(data, copy)
        with gateway(setup.code, fake, copy) as url:
            return asyncio.run(through_gateway(url, fake, setup, conv, questions))


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """The gateway's source at `rev`, checked out beside this one for the time of the block."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "baseline"
        git = ["git", "-C", str(processes.ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", str(path), rev], check=True, capture_output=True)
        try:
            yield path
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=True, capture_output=True)


def summary(name: str, turns: list[Turn], rates: tuple[int, ...]) -> str:
    fresh = [t.fresh for t in turns]
    ttft = " | ".join(f"{statistics.median(fresh) / rate:.2f}" for rate in rates)
    return (
        f"| {name} | {statistics.median(fresh):,.0f} | {statistics.fmean(fresh):,.0f} | {ttft} |"
        f" {statistics.fmean(t.memory for t in turns):,.0f} | {statistics.fmean(t.prompt for t in turns):,.0f} |"
        f" {statistics.fmean(t.share for t in turns):.3f} |"
    )


def per_turn(results: dict[str, list[Turn]]) -> str:
    names = list(results)
    lines = ["| turn | " + " | ".join(f"{n}: fresh / memory / share" for n in names) + " |"]
    lines.append("|---:|" + "---|" * len(names))
    for n in range(len(next(iter(results.values())))):
        cells = [f"{r[n].fresh:,} / {r[n].memory:,} / {r[n].share:.2f}" for r in results.values()]
        lines.append(f"| {n + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(turns: int, baseline: str | None) -> None:
    quick = bool(os.environ.get("BENCH_QUICK"))
    rates = RATES[:1] if quick else RATES
    conv = next(c for c in locomo.load() if c.sample_id == "conv-42")
    questions = chosen_questions(conv, 8 if quick else turns)
    print(f"LoCoMo {conv.sample_id} ({len(conv.turns)} turns) imported; a chat of {len(questions)} of its questions")
    results: dict[str, list[Turn]] = {}
    with fake_ollama() as fake, tempfile.TemporaryDirectory() as folder:
        data = prepared(processes.ROOT, fake, conv, Path(folder))
        setups = [Setup("straight to Ollama", "full", rates[0], None)]
        setups += [Setup(f"{s}, {r:,} tok/s", s, r, processes.ROOT) for s in STYLES for r in rates]
        for setup in setups:
            results[setup.name] = run(setup, fake, conv, questions, data)
            print(f"{setup.name}: done", file=sys.stderr, flush=True)
        if baseline and not quick:
            with worktree(baseline) as code:
                old = prepared(code, fake, conv, Path(folder) / "baseline")
                for style in STYLES:
                    name = f"{style}, layout of {baseline}"
                    results[name] = run(Setup(name, style, rates[0], code), fake, conv, questions, old)
    print(
        "\nPer turn: tokens evaluated afresh / memory tokens added / share of the question's evidence in the prompt\n"
    )
    print(per_turn(results))
    seconds = " | ".join(f"first token p50 at {r:,} tok/s, s" for r in rates)
    print(f"\n| setup | fresh p50 | fresh mean | {seconds} | memory added | prompt | evidence share |")
    print("|---|---:|---:|" + "---:|" * len(rates) + "---:|---:|---:|")
    for name, figures in results.items():
        print(summary(name, figures, rates))
    headline = results[f"full, {rates[0]:,} tok/s"]
    record(
        "turns",
        {
            "fresh_p50": statistics.median(t.fresh for t in headline),
            "fresh_mean": statistics.fmean(t.fresh for t in headline),
            "share": statistics.fmean(t.share for t in headline),
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=40, help="questions asked in the chat")
    parser.add_argument("--baseline", default=BASELINE, help="a git revision to compare with ('' for none)")
    options = parser.parse_args()
    main(options.turns, options.baseline or None)
