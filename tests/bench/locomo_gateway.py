"""LoCoMo evidence recall through a running gateway: the share of each question's evidence turns in its prompt.

    .venv/bin/uv run --group bench python -m tests.bench.locomo_gateway [--windows 4096 8192] [--plot PATH]

locomo_recall.py's benchmark, end to end over HTTP. A fake Ollama serves all-MiniLM-L6-v2 at /api/embed, and
a gateway process runs per mode and context window. Each conversation of ../shared/locomo is imported as one
user's history through `POST /memory/import` (speaker A as `user`, B as `assistant`, each turn with its
speaker's name and its session's date); once `/status` shows it all indexed, each question of categories 1-4
goes to `POST /memory/context` as a new conversation's only message (`X-Memory: read`), and we count the
evidence turns whose lines (`[date] speaker: text`) are in the messages it returns. Modes: lexical (no
embedding model), dense (MiniLM, `lexical_weight` 0) and hybrid (MiniLM, the defaults). A data dir is
imported once and reused by the mode's other windows; dense and hybrid share one, as they index alike and
differ only in how they search. The figures are saved for tests/bench/plot.py. `BENCH_QUICK=1`: one
conversation, its first 40 questions, the 8K window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from gateway.prefill import PRIOR_RATE
from tests import processes
from tests.bench import locomo
from tests.bench.locomo_recall import MODES, WINDOWS, row
from tests.bench.plot import RESULTS, draw
from tests.bench.results import record

BUDGETED = "hybrid, memory budget"  # the runs at a memory budget, by tokens
BUDGETS = (1000, 2000, 4000, 8000)
EMBEDDING_MODEL = "nomic-embed-text"  # the fake embeds with MiniLM under any model name it lists
CONCURRENCY = 4  # questions in flight: enough to keep both processes busy on two cores
INDEX_TIMEOUT = 1800.0  # seconds; embedding the 4,124 turns without the cache takes about seven minutes
SETUPS: dict[str, tuple[str, dict[str, str]]] = {  # mode: (data dir, settings)
    "lexical": ("lexical", {"GATEWAY_EMBEDDING_MODEL": ""}),
    "dense": ("minilm", {"GATEWAY_EMBEDDING_MODEL": EMBEDDING_MODEL, "GATEWAY_RETRIEVAL_LEXICAL_WEIGHT": "0"}),
    "hybrid": ("minilm", {"GATEWAY_EMBEDDING_MODEL": EMBEDDING_MODEL}),
}
Figures = dict[str, float]


@dataclass(frozen=True, slots=True)
class Answer:
    """One question's share of its evidence in the prompt, and the prompt's memory tokens."""

    category: int
    share: float
    tokens: int


@contextmanager
def minilm_ollama() -> Iterator[str]:
    """The fake Ollama, embedding with all-MiniLM-L6-v2."""
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"FAKE_OLLAMA_EMBEDDER": "minilm"}
    with processes.running(["tests.fake_ollama", str(port)], url + "/api/version", env):
        yield url


def import_body(conv: locomo.Conversation) -> dict[str, Any]:
    """The conversation as one user's history in the import shape, a conversation per session."""
    sessions = [
        {
            "id": f"{conv.sample_id}-s{n}",
            "messages": [
                {"role": t.role, "content": t.text, "name": t.speaker, "created_at": t.created_at.isoformat()}
                for t in session
            ],
        }
        for n, session in enumerate(conv.sessions, start=1)
    ]
    return {"user_id": conv.sample_id, "conversations": sessions}


async def import_all(client: httpx.AsyncClient, conversations: list[locomo.Conversation]) -> None:
    for conv in conversations:
        response = await client.post("/memory/import", json=import_body(conv))
        response.raise_for_status()


async def wait_indexed(client: httpx.AsyncClient, messages: int, dense: bool) -> None:
    """Until the index holds every message (with its dense vector, for a dense mode)."""
    deadline = time.monotonic() + INDEX_TIMEOUT
    while time.monotonic() < deadline:
        memory = (await client.get("/status")).raise_for_status().json()["memory"]
        queued = memory["journal"]["outbox"] + (memory["journal"]["lexical_only"] if dense else 0)
        if memory["journal"]["messages"] == messages and memory["indexed"] == messages and not queued:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the gateway did not index {messages} messages within {INDEX_TIMEOUT:g} s")


def evidence_lines(conv: locomo.Conversation, q: locomo.Question) -> list[str]:
    """The texts of the question's evidence turns."""
    return [conv.by_id[e].text for e in q.evidence if e in conv.by_id]


def quoted(prompt: str, text: str) -> bool:
    """The memory block quotes `text` as a line of its own, with or without its speaker."""
    return f"\n{text}\n" in prompt or f": {text}\n" in prompt


async def ask(client: httpx.AsyncClient, conv: locomo.Conversation, q: locomo.Question, n: int) -> Answer:
    """The prompt the gateway would send for the question, asked in a conversation of its own."""
    headers = {"X-User-Id": conv.sample_id, "X-Conversation-Id": f"{conv.sample_id}-q{n}", "X-Memory": "read"}
    body = {"messages": [{"role": "user", "content": q.question}]}
    context = (await client.post("/memory/context", json=body, headers=headers)).raise_for_status().json()
    if context["degraded"]:
        raise RuntimeError(f"recall was degraded: {context['degraded']}")
    prompt = "".join(m["content"] for m in context["messages"] if isinstance(m.get("content"), str))
    lines = evidence_lines(conv, q)
    share = sum(quoted(prompt, line) for line in lines) / len(lines)
    return Answer(q.category, share, context["budget"]["memories"])


async def ask_all(client: httpx.AsyncClient, conversations: list[locomo.Conversation]) -> list[Answer]:
    """Every question of categories 1-4 with evidence, a few at a time."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def limited(conv: locomo.Conversation, q: locomo.Question, n: int) -> Answer:
        async with limit:
            return await ask(client, conv, q, n)

    asked = [
        limited(conv, q, n)
        for conv in conversations
        for n, q in enumerate(conv.questions)
        if q.category <= 4 and evidence_lines(conv, q)
    ]
    return await asyncio.gather(*asked)


def summarise(answers: list[Answer]) -> Figures:
    """Mean share of evidence in the prompt, per category and overall, and the mean memory tokens."""
    shares: dict[int, list[float]] = defaultdict(list)
    for a in answers:
        shares[a.category].append(a.share)
    figures = {locomo.CATEGORIES[c]: statistics.fmean(shares[c]) if shares[c] else math.nan for c in (1, 2, 3, 4)}
    figures["overall"] = statistics.fmean(a.share for a in answers)
    figures["memory tokens"] = statistics.fmean(a.tokens for a in answers)
    return figures


async def measure(url: str, conversations: list[locomo.Conversation], fresh: bool, dense: bool) -> Figures:
    """Import the conversations if the data dir is `fresh`, wait for the index, then ask every question."""
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        if fresh:
            await import_all(client, conversations)
        await wait_indexed(client, sum(len(c.turns) for c in conversations), dense)
        return summarise(await ask_all(client, conversations))


def run(
    conversations: list[locomo.Conversation], windows: list[int], budgets: list[int]
) -> dict[str, dict[int, Figures]]:
    """Every mode at every window, then the hybrid at every memory budget, each a gateway process."""
    results: dict[str, dict[int, Figures]] = defaultdict(dict)
    runs = [(mode, window, {"GATEWAY_MODEL_CONTEXT_WINDOW": str(window)}) for mode in MODES for window in windows]
    runs += [(BUDGETED, budget, budget_settings(budget)) for budget in budgets]
    with tempfile.TemporaryDirectory() as root, minilm_ollama() as fake:
        imported: set[str] = set()
        for mode, size, extra in runs:
            started = time.monotonic()
            data_dir, env = SETUPS["hybrid" if mode == BUDGETED else mode]
            settings = {**env, "GATEWAY_RETRIEVAL_MEMORY_PREFILL_MS": "0", **extra}
            with processes.gateway(fake, Path(root) / data_dir, settings=settings) as url:
                dense = bool(env["GATEWAY_EMBEDDING_MODEL"])
                figures = asyncio.run(measure(url, conversations, data_dir not in imported, dense))
            imported.add(data_dir)
            results[mode][size] = figures
            print(row(f"{mode}, {size}", figures), flush=True)
            print(f"{mode}, {size}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    return results


def budget_settings(budget: int) -> dict[str, str]:
    """A 16K window with at most `budget` memory tokens: the time a model at the assumed pace reads them in
    (/memory/context never asks the model, so the gateway keeps assuming that pace)."""
    ms = budget / PRIOR_RATE * 1000
    return {"GATEWAY_MODEL_CONTEXT_WINDOW": "16384", "GATEWAY_RETRIEVAL_MEMORY_PREFILL_MS": str(ms)}


def main(windows: list[int], budgets: list[int], plot: Path | None) -> None:
    conversations = locomo.load()
    quick = bool(os.environ.get("BENCH_QUICK"))
    if quick:  # the README test: one conversation, its first questions, one window
        conversations = conversations[:1]
        conversations[0].questions[40:] = []
        windows, budgets = [8192], []
    questions = sum(q.category <= 4 for c in conversations for q in c.questions)
    print(f"LoCoMo dev through the gateway: {len(conversations)} conversations, {questions} questions (categories 1-4)")
    header = "| setting | " + " | ".join([*locomo.CATEGORIES.values()][:4]) + " | overall | memory tokens |"
    print(header + "\n|" + "---|" * (header.count("|") - 1), flush=True)
    started = time.monotonic()
    results = run(conversations, windows, budgets)
    print(f"\nall runs: {time.monotonic() - started:.0f} s")
    day = f"{date.today():%Y-%m-%d}"
    source = (
        f"{len(conversations)} conversations, {questions:,} questions (categories 1-4), each asked through a running"
        " gateway (POST /memory/context)\nwith its defaults; embeddings by all-MiniLM-L6-v2; 1,024 tokens kept"
        " for the answer"
    )
    at_8k = {mode: figures[8192]["overall"] for mode, figures in results.items() if 8192 in figures}
    budgeted = {f"budget_{size}": figures["overall"] for size, figures in results.get(BUDGETED, {}).items()}
    record("locomo", {**at_8k, **budgeted})
    if not quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"date": day, "source": source, "results": results}, indent=1))
    if plot:
        draw(results, plot, day, source)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS), help="context windows to try")
    parser.add_argument("--budgets", type=int, nargs="*", default=list(BUDGETS), help="memory budgets to try")
    parser.add_argument("--plot", type=Path, help="also draw recall against memory tokens to this PNG")
    options = parser.parse_args()
    main(options.windows, options.budgets, options.plot)
