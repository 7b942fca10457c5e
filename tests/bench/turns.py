"""A chat's turns as the model pays for them: tokens evaluated afresh, time to first token, memory, evidence.

    .venv/bin/uv run --group bench python -m tests.bench.turns [--turns 40] [--baseline REV] [--conversations ...]

A user whose LoCoMo conversation was imported (through `POST /memory/import`; by default three of them in
turn, conv-42, conv-41 and conv-43, of 629 to 680 turns) holds a chat whose messages are that conversation's
questions (categories 1-4), answered by the fake Ollama in about 120 words, streamed, as two kinds of client
send it: Open WebUI (`full`: the whole history each time, its user and chat headers) and a client that names
its conversation and sends only the new message (`named`, `X-Conversation-Id`). The fake models Ollama's
prompt cache (one slot) and reports a prompt-evaluation rate the gateway learns: 700, 1,000 or 5,000 tokens
a second (an older laptop, a recent one, a gaming GPU).

Per turn: the tokens the model evaluated afresh (the fake's cache; Ollama itself reports the whole prompt)
and their time at the run's rate, the memory tokens the turn added, and the share of the question's evidence
turns that are in the prompt. Beside it: the same chat straight to the fake (no memory) and the gateway of an
earlier commit (`--baseline`, by default the last one before this prompt layout), run from a git worktree.
The per-turn table is the first conversation's; the summary is over all of them. `BENCH_QUICK=1`: one
conversation, eight turns, 1,000 tokens/s, no baseline.
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
from collections import defaultdict
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
RATES = (700, 1000, 5000)  # prompt tokens/s: a 4B model on an older laptop, a recent one, a gaming GPU
CONVERSATIONS = ("conv-42", "conv-41", "conv-43")  # 629, 663 and 680 turns
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


def summary(name: str, turns: list[Turn], rate: int) -> str:
    fresh = [t.fresh for t in turns]
    return (
        f"| {name} | {rate:,} | {statistics.median(fresh):,.0f} | {statistics.fmean(fresh):,.0f} |"
        f" {statistics.median(fresh) / rate:.2f} | {statistics.fmean(t.memory for t in turns):,.0f} |"
        f" {statistics.fmean(t.prompt for t in turns):,.0f} | {statistics.fmean(t.share for t in turns):.3f} |"
    )


def per_turn(results: dict[str, list[Turn]]) -> str:
    names = list(results)
    lines = ["| turn | " + " | ".join(names) + " |", "|---:|" + "---|" * len(names)]
    for n in range(len(next(iter(results.values())))):
        cells = [f"{r[n].fresh:,} / {r[n].memory:,} / {r[n].share:.2f}" for r in results.values()]
        lines.append(f"| {n + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chats(
    conv: locomo.Conversation, turns: int, rates: tuple[int, ...], baseline: str | None, fake: str, folder: Path
) -> dict[tuple[str, int], list[Turn]]:
    """Every setup's chat over one conversation: (setup, rate) -> its turns."""
    questions = chosen_questions(conv, turns)
    data = prepared(processes.ROOT, fake, conv, folder / conv.sample_id)
    results: dict[tuple[str, int], list[Turn]] = {}
    direct = run(Setup("straight to Ollama", "full", rates[0], None), fake, conv, questions, data)
    results.update({("straight to Ollama", rate): direct for rate in rates})
    for style in STYLES:
        for rate in rates:
            results[style, rate] = run(Setup(style, style, rate, processes.ROOT), fake, conv, questions, data)
    if baseline:
        with worktree(baseline) as code:
            old = prepared(code, fake, conv, folder / f"{conv.sample_id}-baseline")
            for style in STYLES:
                turns_before = run(Setup(style, style, rates[0], code), fake, conv, questions, old)
                results.update({(f"{style}, layout of {baseline}", rate): turns_before for rate in rates})
    print(f"{conv.sample_id}: done", file=sys.stderr, flush=True)
    return results


def main(turns: int, baseline: str | None, names: list[str]) -> None:
    quick = bool(os.environ.get("BENCH_QUICK"))
    rates = (1000,) if quick else RATES
    conversations = [c for c in locomo.load() if c.sample_id in (names[:1] if quick else names)]
    turns = 8 if quick else turns
    print(
        f"Chats of {turns} questions over {', '.join(f'{c.sample_id} ({len(c.turns)} turns)' for c in conversations)}"
    )
    results: dict[tuple[str, int], list[Turn]] = defaultdict(list)
    with fake_ollama() as fake, tempfile.TemporaryDirectory() as folder:
        for n, conv in enumerate(conversations):
            chat = chats(conv, turns, rates, None if quick else baseline, fake, Path(folder))
            if n == 0:
                print(
                    f"\n{conv.sample_id}, per turn: tokens evaluated afresh / memory tokens added / share of the"
                    " question's evidence in the prompt\n"
                )
                print(per_turn({f"{name}, {rate:,} tok/s": t for (name, rate), t in chat.items() if name in STYLES}))
            for key, figures in chat.items():
                results[key] += figures
    print(
        "\n| setup | tokens/s | fresh p50 | fresh mean | first token p50, s | memory added | prompt | evidence share |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (name, rate), figures in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        print(summary(name, figures, rate))
    headline = results["full", 1000]
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
    parser.add_argument("--conversations", nargs="+", default=list(CONVERSATIONS), help="LoCoMo sample ids")
    options = parser.parse_args()
    main(options.turns, options.baseline or None, options.conversations)
