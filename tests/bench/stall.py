"""How long the largest requests a client may send hold up everyone else's.

    .venv/bin/uv run --group bench python -m tests.bench.stall [--repeat 3]

The gateway runs as `gateway serve` in front of the fake Ollama (fresh data dir). While each large request is
served, and until what it stored is indexed, a second client asks `/health` every 20 ms: its slowest answer is
the stall every other client felt. Each request is as large as the gateway accepts (a 16 MB body, a
64,000-character memory) or larger (refused). Per case, medians over `--repeat` runs: the request's own time,
the slowest `/health`, and the median `/health`. `BENCH_QUICK=1`: smaller bodies, one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from tests import processes
from tests.bench.results import record
from tests.bench.soak import WORDS

QUICK = bool(os.environ.get("BENCH_QUICK"))
SCALE = 8 if QUICK else 1  # bodies are this many times smaller when quick
MEMORY_CHARS = 64_000


def prose(chars: int, rng: random.Random) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        words.append(rng.choice(WORDS) + str(rng.randrange(1000)))
        size += len(words[-1]) + 1
    return " ".join(words)[:chars]


async def drained(http: httpx.AsyncClient) -> None:
    """Wait until the outbox is empty: the stored request is indexed."""
    while True:
        if not (await http.get("/status")).json()["memory"]["journal"]["outbox"]:
            return
        await asyncio.sleep(0.05)


def cases(rng: random.Random) -> dict[str, Callable[[httpx.AsyncClient, str], Awaitable[int]]]:
    memory = prose(MEMORY_CHARS, rng)
    history_count = 16_000 // SCALE  # 1 KB messages: a 16 MB body
    history = [
        {"role": "user" if n % 2 == 0 else "assistant", "content": prose(1000, rng)} for n in range(history_count)
    ]
    huge = prose(15_000_000 // SCALE, rng)
    imported = [{"role": "user", "content": memory} for _ in range(250 // SCALE)]  # 16 MB of 64,000-char memories

    async def add(http: httpx.AsyncClient, user: str) -> int:
        replies = await asyncio.gather(
            *(http.post("/memory/add", json={"content": memory, "user_id": user}) for _ in range(8))
        )
        await drained(http)
        return max(r.status_code for r in replies)

    async def chat_huge(http: httpx.AsyncClient, user: str) -> int:
        body = {"messages": [{"role": "user", "content": huge}]}
        return (await http.post("/v1/chat/completions", json=body, headers={"X-User-Id": user})).status_code

    async def chat_history(http: httpx.AsyncClient, user: str) -> int:
        body = {"messages": [*history, {"role": "user", "content": "and the garden?"}]}
        reply = await http.post("/v1/chat/completions", json=body, headers={"X-User-Id": user})
        await drained(http)
        return reply.status_code

    async def import_(http: httpx.AsyncClient, user: str) -> int:
        body = {"user_id": user, "conversations": [{"id": "c1", "messages": imported}]}
        reply = await http.post("/memory/import", json=body)
        await drained(http)
        return reply.status_code

    async def search(http: httpx.AsyncClient, user: str) -> int:
        body = {"query": memory[:200], "user_id": user, "limit": 50}
        return (await http.post("/memory/search", json=body)).status_code

    async def export(http: httpx.AsyncClient, user: str) -> int:
        return (await http.get("/memory/export", params={"user_id": user})).status_code

    async def chat_recall(http: httpx.AsyncClient, user: str) -> int:
        body = {"messages": [{"role": "user", "content": memory[:300]}]}
        headers = {"X-User-Id": user, "X-Memory": "read"}
        return (await http.post("/v1/chat/completions", json=body, headers=headers)).status_code

    return {
        "8 memories of 64,000 chars, added at once, until indexed": add,
        f"a chat with one {len(huge) / 1e6:.0f} MB message (refused)": chat_huge,
        f"a chat with {history_count:,} earlier messages of 1 KB, until indexed": chat_history,
        f"an import of {len(imported)} memories of 64,000 chars, until indexed": import_,
        "a search over them (limit 50)": search,
        "an export of them": export,
        "a chat recalling from them": chat_recall,
    }


async def probe(http: httpx.AsyncClient, seen: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await http.get("/health")
        seen.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)


async def measure(url: str, run: Callable[[httpx.AsyncClient, str], Awaitable[int]], user: str) -> tuple[float, ...]:
    async with httpx.AsyncClient(base_url=url, timeout=300) as http, httpx.AsyncClient(base_url=url) as prober:
        seen: list[float] = []
        stop = asyncio.Event()
        probing = asyncio.create_task(probe(prober, seen, stop))
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        status = await run(http, user)
        took = time.perf_counter() - started
        stop.set()
        await probing
    return took, max(seen), statistics.median(seen), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1 if QUICK else 3)
    args = parser.parse_args()
    rng = random.Random(7)
    table = cases(rng)
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in table}
    for repeat in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder, processes.fake_ollama() as fake:
            port = processes.free_port()
            url = f"http://127.0.0.1:{port}"
            env = processes.gateway_env(fake, Path(folder) / "data")
            with processes.running(["gateway", "serve", "--port", str(port)], url + "/health", env):
                for name, run in table.items():
                    results[name].append(asyncio.run(measure(url, run, f"stall{repeat}")))
    print(f"stall: medians of {args.repeat} runs, {os.cpu_count()} cores; /health asked every 20 ms meanwhile")
    print("| request | status | its time s | slowest /health ms | median /health ms |")
    print("|---|---:|---:|---:|---:|")
    worst = 0.0
    for name, runs in results.items():
        took, slowest, median = (statistics.median(r[n] for r in runs) for n in range(3))
        worst = max(worst, slowest)
        print(f"| {name} | {runs[0][3]} | {took:.2f} | {slowest * 1000:.0f} | {median * 1000:.1f} |")
    record("stall", {"slowest_ms": worst * 1000})


if __name__ == "__main__":
    main()
