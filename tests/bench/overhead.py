"""Gateway overhead against a zero-latency fake Ollama: requests/s and p50/p95 latency.

    .venv/bin/uv run --group bench python -m tests.bench.overhead [--seconds 3] [--repeats 3]

Rows: the fake Ollama's /api/chat called directly (the floor); the gateway as `gateway serve` runs it
(uvicorn, uvloop, httptools) with `X-Memory: off`, non-streamed and streamed; the same app under granian
(the alternative measured for the choice of server); and the gateway journaling every turn (memory
on, a named conversation, so each request also reads the conversation's history). Runs are interleaved and
repeated; each figure is the median over the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path

import uvloop

from tests import processes
from tests.bench.load import LoadResult, build_request, run_load

MESSAGES = [{"role": "user", "content": "What did I say about my sister's wedding?"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data, ExitStack() as stack:  # the servers stop before their data goes
        fake = stack.enter_context(processes.fake_ollama())
        gateway = stack.enter_context(processes.gateway(fake, Path(data) / "gateway"))
        granian = stack.enter_context(_granian(fake, Path(data) / "granian-data"))
        chat = json.dumps({"model": "qwen3:4b", "messages": MESSAGES}).encode()
        streamed = json.dumps({"model": "qwen3:4b", "messages": MESSAGES, "stream": True}).encode()
        native = json.dumps({"model": "qwen3:4b", "messages": MESSAGES, "stream": False}).encode()
        off = {"X-Memory": "off"}
        on = {"X-User-Id": "bench", "X-Conversation-Id": "bench"}
        targets = {
            "fake Ollama directly": (fake, "/api/chat", native, {}),
            "gateway (memory off)": (gateway, "/v1/chat/completions", chat, off),
            "gateway, streamed": (gateway, "/v1/chat/completions", streamed, off),
            "same app on granian": (granian, "/v1/chat/completions", chat, off),
            "gateway, memory on": (gateway, "/v1/chat/completions", chat, on),
        }
        results: dict[str, list[LoadResult]] = {name: [] for name in targets}
        for _ in range(args.repeats):
            for name, (url, path, body, headers) in targets.items():
                host, port = url.removeprefix("http://").split(":")
                request = build_request(host, int(port), "POST", path, body, headers)
                results[name].append(
                    uvloop.run(run_load(host, int(port), request, connections=args.connections, seconds=args.seconds))
                )
    report(results, args)


@contextmanager
def _granian(fake: str, data_dir: Path) -> Iterator[str]:
    port = processes.free_port()
    args = [
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--log-level",
        "warning",
        "tests.bench.asgi_app:app",
    ]
    with processes.running(args, f"http://127.0.0.1:{port}/health", processes.gateway_env(fake, data_dir)):
        yield f"http://127.0.0.1:{port}"


def report(results: dict[str, list[LoadResult]], args: argparse.Namespace) -> None:
    def median(name: str, figure: str) -> float:
        return float(statistics.median(getattr(r, figure) for r in results[name]))

    floor50, floor95 = median("fake Ollama directly", "p50"), median("fake Ollama directly", "p95")
    print(
        f"# {date.today()} · {platform.machine()}, {os.cpu_count()} cores · Python {sys.version.split()[0]} · "
        f"{args.connections} connections · {args.seconds:g} s x {args.repeats} runs, medians"
    )
    print(f"{'':24} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'+p50 ms':>8} {'+p95 ms':>8} {'errors':>7}")
    for name in results:
        rps, p50, p95 = median(name, "rps"), median(name, "p50"), median(name, "p95")
        errors = sum(r.errors for r in results[name])
        added = "" if name.startswith("fake") else f"{p50 - floor50:8.2f} {p95 - floor95:8.2f}"
        print(f"{name:24} {rps:8.0f} {p50:8.2f} {p95:8.2f} {added:>17} {errors:7d}")


if __name__ == "__main__":
    main()
