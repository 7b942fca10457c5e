"""Streaming through the gateway: time to first byte it adds, and chunks per second it relays.

    .venv/bin/uv run --group bench python -m tests.bench.streaming [--requests 200]

One client, one request at a time, against the zero-latency fake Ollama: its `/api/chat` called directly
(NDJSON lines) beside the gateway's `/v1/chat/completions` with `stream: true` (SSE frames), memory off.
Time to first byte is until the first line of the answer; relaying is a 2,000-chunk answer (the fake
streams a word a chunk), timed from the first chunk to the last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests import processes
from tests.bench.results import record

LONG = " ".join(f"w{n}" for n in range(1999))  # the fake echoes it as 2,000 chunks


def first_byte(client: httpx.Client, url: str, body: dict[str, object], headers: dict[str, str]) -> float:
    began, elapsed = time.perf_counter(), 0.0
    with client.stream("POST", url, json=body, headers=headers) as response:
        for line in response.iter_lines():  # read to the end, so the connection can be reused
            if line.strip() and not elapsed:
                elapsed = time.perf_counter() - began
    return elapsed * 1000


def relay_rate(client: httpx.Client, url: str, body: dict[str, object], headers: dict[str, str]) -> float:
    """Chunks per second from the first chunk to the last."""
    chunks, started = 0, 0.0
    with client.stream("POST", url, json=body, headers=headers) as response:
        for line in response.iter_lines():
            if not line.strip() or line == "data: [DONE]":
                continue
            chunks += 1
            if chunks == 1:
                started = time.perf_counter()
    return (chunks - 1) / (time.perf_counter() - started)


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, float]:
    values = sorted(measure() for _ in range(runs))
    return statistics.median(values), values[int(0.95 * (len(values) - 1))]


Row = tuple[tuple[float, float], tuple[float, float]]  # first byte (p50, p95), chunks/s (p50, p95)


def measure(client: httpx.Client, url: str, headers: dict[str, str], requests: int) -> Row:
    base: dict[str, object] = {"model": "qwen3:4b", "stream": True}
    short = {**base, "messages": [{"role": "user", "content": "hi there"}]}
    long = {**base, "messages": [{"role": "user", "content": LONG}]}
    for _ in range(3):  # warm up connections and caches
        first_byte(client, url, short, headers)
    ttfb = median_of(requests, lambda: first_byte(client, url, short, headers))
    rate = median_of(max(3, requests // 20), lambda: relay_rate(client, url, long, headers))
    return ttfb, rate


def main() -> None:
    parser = argparse.ArgumentParser(description="Streaming through the gateway")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    requests = 10 if os.environ.get("BENCH_QUICK") else args.requests
    with (
        tempfile.TemporaryDirectory() as data,
        processes.fake_ollama() as fake,
        processes.gateway(fake, Path(data) / "g") as gateway,
        httpx.Client(timeout=60) as client,
    ):
        rows = {
            "fake Ollama directly": measure(client, fake + "/api/chat", {}, requests),
            "gateway": measure(client, gateway + "/v1/chat/completions", {"X-Memory": "off"}, requests),
        }
    print(f"one client, {requests} requests; medians (p95)\n")
    print("| | first byte ms | added ms | chunks/s relayed |\n|---|---:|---:|---:|")
    floor = rows["fake Ollama directly"][0]
    for name, ((p50, p95), (rate, _)) in rows.items():
        added = f"{p50 - floor[0]:.2f} ({p95 - floor[1]:.2f})" if name == "gateway" else ""
        print(f"| {name} | {p50:.2f} ({p95:.2f}) | {added} | {rate:,.0f} |")
    record("streaming", {"added_ms": rows["gateway"][0][0] - floor[0], "chunks_per_s": rows["gateway"][1][0]})


if __name__ == "__main__":
    main()
