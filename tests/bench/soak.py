"""The gateway under a steady load for a long time: its memory (RSS), open files and latency, minute by minute.

    .venv/bin/uv run --group bench python -m tests.bench.soak [--minutes 10] [--rate 20] [--users 50]

The gateway runs as `gateway serve` in front of the fake Ollama (fresh data dir). Four clients share a bounded
rate of chat requests (`--rate` a second in all) from `--users` users, each message drawn from a fixed
vocabulary. The first half of the run remembers every turn (`X-Memory: on`: the journal and the index grow);
the second half only recalls (`X-Memory: read`) over the memories the first half left, so what the process
holds then should level off: growth there is a leak, not memories. Per minute: requests, errors, p50/p95
latency, RSS, open file descriptors, memories in the journal. `BENCH_QUICK=1`: two "minutes" of 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests import processes

WORDS = [
    "garden",
    "sister",
    "Lisbon",
    "piano",
    "bread",
    "river",
    "mountain",
    "coffee",
    "train",
    "letter",
    "window",
    "summer",
    "dog",
    "cat",
    "wedding",
    "school",
    "market",
    "bicycle",
    "lake",
    "novel",
    "concert",
    "kitchen",
    "winter",
    "harbour",
    "museum",
]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


QUICK = bool(os.environ.get("BENCH_QUICK"))
MINUTE = 5.0 if QUICK else 60.0  # seconds


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def client(
    url: str, users: int, interval: float, until: float, mode: str, latencies: list[float], errors: list[int]
) -> None:
    rng = random.Random()
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        while (now := time.monotonic()) < until:
            user = f"soak{rng.randrange(users)}"
            text = " ".join(rng.choice(WORDS) for _ in range(12))
            body = {"messages": [{"role": "user", "content": text}]}
            started = time.perf_counter()
            try:
                reply = await http.post(
                    "/v1/chat/completions", json=body, headers={"X-User-Id": user, "X-Memory": mode}
                )
                if reply.status_code != 200:
                    errors.append(reply.status_code)
            except httpx.HTTPError:
                errors.append(0)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - now)))


async def minute(url: str, users: int, rate: float, mode: str) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    errors: list[int] = []
    until = time.monotonic() + MINUTE
    clients = 4
    await asyncio.gather(*(client(url, users, clients / rate, until, mode, latencies, errors) for _ in range(clients)))
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=2 if QUICK else 10)
    parser.add_argument("--rate", type=float, default=20.0, help="requests a second, all clients together")
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, processes.fake_ollama() as fake:
        port = processes.free_port()
        url = f"http://127.0.0.1:{port}"
        env = processes.gateway_env(fake, Path(folder) / "data")
        with processes.running(["gateway", "serve", "--port", str(port)], url + "/health", env) as gateway:
            print(
                f"soak: {args.minutes} min at {args.rate:g} requests/s from {args.users} users, {os.cpu_count()} cores"
            )
            print("| minute | memory | requests | errors | p50 ms | p95 ms | RSS MiB | open fds | memories |")
            print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
            for n in range(1, args.minutes + 1):
                mode = "on" if n <= (args.minutes + 1) // 2 else "read"
                latencies, errors = asyncio.run(minute(url, args.users, args.rate, mode))
                memories = httpx.get(url + "/status").json()["memory"]["journal"]["messages"]
                cuts = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [0.0] * 19
                print(
                    f"| {n} | {mode} | {len(latencies)} | {len(errors)} | {cuts[9] * 1000:.1f} | {cuts[18] * 1000:.1f}"
                    f" | {rss_kib(gateway.pid) / 1024:.0f} | {open_fds(gateway.pid)} | {memories} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
