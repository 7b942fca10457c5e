"""Gateway overhead against a zero-latency fake Ollama, beside LiteLLM's proxy: requests/s, p50/p95 latency.

    .venv/bin/uv run --group bench python -m tests.bench.overhead [--seconds 3] [--repeats 3]

Rows: the fake Ollama's /api/chat called directly (the floor); the gateway as `gateway serve` runs it with
`X-Memory: off`, non-streamed and streamed; the gateway with memory on for a user with 5,000 memories (each
request recalls, fills the prompt with memories, and journals and indexes its turn); and LiteLLM's proxy
(`tests/bench/litellm.py`, one worker like the gateway's one process) in front of the same fake. Runs are
interleaved and repeated after a warm-up of each; each figure is the median over the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import httpx
import uvloop

from tests import processes
from tests.bench import litellm
from tests.bench.load import LoadResult, build_request, run_load
from tests.bench.results import record

MODEL = "qwen3:4b"
MESSAGES = [{"role": "user", "content": "What did I say about my sister's wedding?"}]
MEMORIES = 5_000
VOCABULARY = (
    "my sister wedding Lisbon garden bread dog walked piano concert trip Paris mountain lake book novel painting "
    "work office colleague birthday cake soccer game marathon coffee tea morning evening weekend holiday school "
    "teacher student project deadline music guitar song friend family mother father brother daughter son house "
    "kitchen recipe dinner lunch movie camera photo beach summer winter snow rain last next week we I she he"
)
WORDS = VOCABULARY.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if os.environ.get("BENCH_QUICK"):  # the README test: every row, briefly
        args.seconds, args.repeats = 1.0, 1
    results = measure(args.seconds, args.repeats, args.connections)
    print(table(results, args))
    rps = {name: statistics.median(r.rps for r in runs) for name, runs in results.items()}
    on = next(name for name in rps if name.startswith("gateway, memory on"))
    record("overhead", {"off_rps": rps["gateway, memory off"], "on_rps": rps[on], "litellm_rps": rps["LiteLLM proxy"]})


def measure(seconds: float, repeats: int, connections: int) -> dict[str, list[LoadResult]]:
    with tempfile.TemporaryDirectory() as data, ExitStack() as stack:  # the servers stop before their data goes
        fake = stack.enter_context(processes.fake_ollama())
        gateway = stack.enter_context(processes.gateway(fake, Path(data) / "gateway"))
        peer = stack.enter_context(litellm.proxy(fake, MODEL))
        remembered = seed(gateway, "bench", MEMORIES)
        chat = json.dumps({"model": MODEL, "messages": MESSAGES}).encode()
        streamed = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True}).encode()
        native = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": False}).encode()
        targets = {
            "fake Ollama directly": (fake, "/api/chat", native, {}),
            "gateway, memory off": (gateway, "/v1/chat/completions", chat, {"X-Memory": "off"}),
            "gateway, streamed": (gateway, "/v1/chat/completions", streamed, {"X-Memory": "off"}),
            f"gateway, memory on ({remembered:,})": (gateway, "/v1/chat/completions", chat, {"X-User-Id": "bench"}),
            "LiteLLM proxy": (peer, "/v1/chat/completions", chat, {}),
        }
        requests = {name: request(url, path, body, headers) for name, (url, path, body, headers) in targets.items()}
        for host, port, raw in requests.values():  # LiteLLM is slow for its first few hundred requests
            uvloop.run(run_load(host, port, raw, connections=connections, seconds=2.0, warmup=0))
        results: dict[str, list[LoadResult]] = {name: [] for name in targets}
        for _ in range(repeats):
            for name, (host, port, raw) in requests.items():
                results[name].append(uvloop.run(run_load(host, port, raw, connections=connections, seconds=seconds)))
        return results


def request(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port), build_request(host, int(port), "POST", path, body, headers)


def seed(gateway: str, user: str, count: int) -> int:
    """Give `user` `count` remembered messages through the import API; returns them once indexed."""
    rng = random.Random(5)
    conversations = [
        {
            "id": f"past-{n}",
            "messages": [
                {"role": ("user", "assistant")[m % 2], "content": " ".join(rng.choices(WORDS, k=rng.randint(8, 30)))}
                for m in range(50)
            ],
        }
        for n in range(count // 50)
    ]
    httpx.post(f"{gateway}/memory/import", json={"user_id": user, "conversations": conversations}, timeout=300)
    while (memory := httpx.get(f"{gateway}/status").json()["memory"])["journal"]["outbox"]:
        time.sleep(0.2)
    return int(memory["indexed"])


def table(results: dict[str, list[LoadResult]], args: argparse.Namespace) -> str:
    def median(name: str, figure: str) -> float:
        return float(statistics.median(getattr(r, figure) for r in results[name]))

    floor50, floor95 = median("fake Ollama directly", "p50"), median("fake Ollama directly", "p95")
    lines = [
        f"{date.today()} · {platform.machine()}, {os.cpu_count()} cores · Python {sys.version.split()[0]} · "
        f"{args.connections} connections · {args.seconds:g} s x {args.repeats} runs, medians",
        "",
        "| | req/s | p50 ms | p95 ms | added p50 ms | added p95 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in results:
        rps, p50, p95 = median(name, "rps"), median(name, "p50"), median(name, "p95")
        added = " | " if name.startswith("fake") else f"{p50 - floor50:.2f} | {p95 - floor95:.2f}"
        errors = sum(r.errors for r in results[name])
        lines.append(f"| {name} | {rps:.0f} | {p50:.2f} | {p95:.2f} | {added} | {errors} |")
    on = next(name for name in results if name.startswith("gateway, memory on"))
    ratios = [mine.rps / peer.rps for mine, peer in zip(results[on], results["LiteLLM proxy"], strict=True)]
    lines += ["", "memory on / LiteLLM in each run (they run back to back): " + ", ".join(f"{r:.2f}x" for r in ratios)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
