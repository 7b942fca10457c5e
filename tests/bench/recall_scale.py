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
from pathlib import Path

import httpx
import numpy as np

from gateway import lexical
from gateway.config import load
from gateway.memory import Memory
from gateway.ollama import Ollama
from gateway.recall import fuse

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


async def measure(size: int, users: int) -> dict[str, float]:
    rng = random.Random(size)
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load(None, {"GATEWAY_MEMORY_DATA_DIR": data_dir, "GATEWAY_EMBEDDING_MODEL": "fake-384"})
        async with httpx.AsyncClient(transport=embedder()) as client:
            memory = await Memory.open(settings, Ollama(client, "http://fake"))
            try:
                await memory.reconcile()
                started = time.perf_counter()
                for chunk in range(0, size, 5_000):
                    rows = [("user", sentence(rng), time.time(), "") for _ in range(min(5_000, size - chunk))]
                    for user in range(users):  # each user's share of this chunk, as one conversation
                        mine = rows[user::users]
                        if mine:
                            await memory.journal.add_messages(f"u{user}", f"c{chunk}", mine)
                    await memory.drain()
                ingest = size / (time.perf_counter() - started)
                await memory.index.flush()
                latencies = []
                query_vectors = np.random.default_rng(1).standard_normal((QUERIES, DIM)).astype(np.float32)
                for n in range(QUERIES):
                    text = sentence(rng)
                    began = time.perf_counter()
                    semantic, words = await memory.index.search(
                        f"u{n % users}", dense=query_vectors[n].tolist(), sparse=lexical.query(text), limit=200
                    )
                    ranked = fuse(semantic, words, threshold=0.05, recency_weight=0.02, limit=200)
                    await memory.index.fetch([r.id for r in ranked])
                    latencies.append((time.perf_counter() - began) * 1000)
                latencies.sort()
                return {
                    "memories": size,
                    "ingest_per_s": ingest,
                    "p50_ms": statistics.median(latencies),
                    "p95_ms": latencies[int(0.95 * len(latencies))],
                    "rss_mb": rss_mb(),
                    "disk_mb": disk_mb(Path(data_dir)),
                }
            finally:
                await memory.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Recall at scale on the embedded engine")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process measuring one size
    args = parser.parse_args()
    if os.environ.get("BENCH_QUICK"):  # the README test: a small run
        args.sizes, args.users = [2_000], 100
    if args.one:
        print(json.dumps(asyncio.run(measure(args.one, args.users))))
        return
    print(f"embedded engine, {args.users} users, 384-d vectors, {QUERIES} recalls per size (embedding excluded)\n")
    print("| memories | ingest/s | recall p50 ms | recall p95 ms | RSS MB | disk MB |\n|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        child = [sys.executable, "-m", "tests.bench.recall_scale", "--one", str(size), "--users", str(args.users)]
        figures = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
        print(
            f"| {size:,} | {figures['ingest_per_s']:,.0f} | {figures['p50_ms']:.2f} | {figures['p95_ms']:.2f}"
            f" | {figures['rss_mb']:.0f} | {figures['disk_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
