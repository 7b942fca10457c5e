"""Recall at scale on the embedded engine: ingest rate, recall latency, RSS and disk, across 1,000 users.

    .venv/bin/uv run --group bench python -m tests.bench.recall_scale [--sizes 10000 100000] [--users 1000]

Memories go in through the product's path (journal, outbox, lexical vectors, embedded index) with random
384-dimension unit vectors standing in for embeddings and texts drawn from a Zipf vocabulary, so both legs
do real work. Recall latency is the product's recall for one user with its defaults, embedding excluded:
both legs' top 200 (`index.search`), fusion (`fuse`), and the payloads of the memories chosen
(`index.fetch`). Each size runs in a fresh process so RSS is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

from gateway import lexical
from gateway.config import Settings, load
from gateway.memory import Memory
from gateway.ollama import Ollama
from gateway.recall import fuse
from tests.bench.results import record

DIM = 384
QUERIES = 500
WORDS = [f"w{n}" for n in range(20_000)]


def embedder(seed: int = 7) -> httpx.MockTransport:
    rng = np.random.default_rng(seed)

    def handle(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        vectors = rng.standard_normal((len(texts), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return httpx.Response(200, json={"embeddings": vectors.round(5).tolist()})

    return httpx.MockTransport(handle)


def sentence(rng: random.Random) -> str:
    return " ".join(WORDS[min(int(rng.paretovariate(1.1)) - 1, len(WORDS) - 1)] for _ in range(rng.randint(6, 30)))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 2**20  # allocated, not apparent


async def measure(size: int, users: int, keep: Path | None = None) -> dict[str, float]:
    """Build (or, with `keep`, reuse) an index of `size` memories, then time recalls."""
    if keep is None:
        with tempfile.TemporaryDirectory() as data_dir:
            return await _measure(size, users, Path(data_dir))
    return await _measure(size, users, keep / str(size))


async def _measure(size: int, users: int, data_dir: Path) -> dict[str, float]:
    rng = random.Random(size)
    settings = load(None, {"GATEWAY_MEMORY_DATA_DIR": str(data_dir), "GATEWAY_EMBEDDING_MODEL": "fake-384"})
    async with httpx.AsyncClient(transport=embedder()) as client:
        memory = await Memory.open(settings, Ollama(client, "http://fake"))
        try:
            await memory.reconcile()
            rate = await ingest(memory, size, users, rng)
            await memory.index.flush()
            return {
                "memories": size,
                "ingest_per_s": rate,
                **await recalls(memory, users, rng),
                "rss_mb": rss_mb(),
                "disk_mb": disk_mb(data_dir),
            }
        finally:
            await memory.close()


async def ingest(memory: Memory, size: int, users: int, rng: random.Random) -> float:
    """Store memories up to `size` (a kept index may have them already); memories per second, or NaN."""
    built = (await memory.journal.counts())["messages"]
    started = time.perf_counter()
    for chunk in range(built, size, 5_000):
        rows = [("user", sentence(rng), time.time(), "") for _ in range(min(5_000, size - chunk))]
        for user in range(users):  # each user's share of this chunk, as one conversation
            mine = rows[user::users]
            if mine:
                await memory.journal.add_messages(f"u{user}", f"c{chunk}", mine)
        await memory.drain()
    return (size - built) / (time.perf_counter() - started) if built < size else float("nan")


async def recalls(memory: Memory, users: int, rng: random.Random) -> dict[str, float]:
    """p50/p95 of the product's recall (embedding excluded), and the median of each of its three steps."""
    defaults = Settings().retrieval
    latencies, steps = [], defaultdict(list)
    query_vectors = np.random.default_rng(1).standard_normal((QUERIES, DIM)).astype(np.float32)
    for n in range(QUERIES):
        dense, words = query_vectors[n].tolist(), lexical.query(sentence(rng))
        began = time.perf_counter()
        semantic, by_words = await memory.index.search(f"u{n % users}", dense=dense, sparse=words, limit=defaults.top_k)
        searched = time.perf_counter()
        ranked = fuse(
            semantic,
            by_words,
            threshold=defaults.relevance_threshold,
            recency_weight=defaults.recency_weight,
            limit=defaults.top_k,
        )
        fused = time.perf_counter()
        await memory.index.fetch(f"u{n % users}", [r.id for r in ranked])
        done = time.perf_counter()
        latencies.append((done - began) * 1000)
        for step, took in (("search", searched - began), ("fuse", fused - searched), ("fetch", done - fused)):
            steps[step].append(took * 1000)
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(0.95 * len(latencies))],
        **{f"{step}_ms": statistics.median(took) for step, took in steps.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Recall at scale on the embedded engine")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--keep", type=Path, help="build each size's index under this folder, and reuse it next time")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process measuring one size
    args = parser.parse_args()
    if os.environ.get("BENCH_QUICK"):  # the README test: a small run
        args.sizes, args.users = [2_000], 100
    if args.one:
        print(json.dumps(asyncio.run(measure(args.one, args.users, args.keep))))
        return
    print(f"embedded engine, {args.users} users, 384-d vectors, {QUERIES} recalls per size (embedding excluded)\n")
    print(
        "| memories | ingest/s | recall p50 ms | recall p95 ms | search / fuse / fetch p50 ms | RSS MB | disk MB |\n"
        "|---:|---:|---:|---:|---:|---:|---:|"
    )
    recorded: dict[str, float] = {}
    for size in args.sizes:
        child = [sys.executable, "-m", "tests.bench.recall_scale", "--one", str(size), "--users", str(args.users)]
        child += ["--keep", str(args.keep)] if args.keep else []
        figures = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
        print(
            f"| {size:,} | {figures['ingest_per_s']:,.0f} | {figures['p50_ms']:.2f} | {figures['p95_ms']:.2f}"
            f" | {figures['search_ms']:.2f} / {figures['fuse_ms']:.2f} / {figures['fetch_ms']:.2f}"
            f" | {figures['rss_mb']:.0f} | {figures['disk_mb']:.0f} |",
            flush=True,
        )
        recorded |= {f"{size}_p50": figures["p50_ms"], f"{size}_p95": figures["p95_ms"]}
    record("scale", recorded)


if __name__ == "__main__":
    main()
