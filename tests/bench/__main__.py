"""Run the benchmarks and print their tables, then one summary table against the goals.

    .venv/bin/uv run --group bench python -m tests.bench [locomo] [scale] [overhead] [streaming] [turns] [stall]

With no names, all six: LoCoMo evidence recall through the gateway (tests/bench/locomo_gateway.py, which
also redraws tests/bench/locomo_recall.png), recall at scale on the embedded engine (recall_scale.py:
10k, 100k and 1M memories), the gateway's overhead beside LiteLLM's proxy (overhead.py), streaming
(streaming.py), the turns of a long chat as the model pays for them (turns.py), and how long the largest
requests hold up the others (stall.py). `BENCH_QUICK=1` makes each one small.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from tests.bench.results import FOLDER, recorded

BENCHMARKS = {  # name: the module's command line
    "locomo": ["tests.bench.locomo_gateway", "--plot", str(Path(__file__).parent / "locomo_recall.png")],
    "scale": ["tests.bench.recall_scale"],
    "overhead": ["tests.bench.overhead"],
    "streaming": ["tests.bench.streaming"],
    "turns": ["tests.bench.turns"],
    "stall": ["tests.bench.stall"],
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"no benchmark named {', '.join(unknown)}; there are {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        for name in names or BENCHMARKS:
            args = BENCHMARKS[name]
            if name == "locomo" and os.environ.get("BENCH_QUICK"):
                args = args[:1]  # a quick run's figures are not the plot's
            print(f"\n## {name}: python -m {' '.join(args)}\n", flush=True)
            subprocess.run([sys.executable, "-m", *args], check=True, env={**os.environ, FOLDER: folder})
        print(f"\n## summary: {date.today()}, {platform.machine()}, {os.cpu_count()} cores\n")
        print(summary(Path(folder)))
    return 0


def summary(folder: Path) -> str:
    """One row per headline figure that was measured, with its goal."""
    locomo, scale = recorded(folder, "locomo"), recorded(folder, "scale")
    overhead, streaming = recorded(folder, "overhead"), recorded(folder, "streaming")
    turns, stall = recorded(folder, "turns"), recorded(folder, "stall")
    litellm = overhead.get("litellm_rps", math.nan)
    rows: list[tuple[str, float | str | None, str, str]] = [
        ("LoCoMo evidence recall, 8K prompt: hybrid", locomo.get("hybrid"), "{:.3f}", "≥ 0.90"),
        ("LoCoMo evidence recall, 8K prompt: words alone", locomo.get("lexical"), "{:.3f}", "BM25 0.73 in 4K"),
        ("LoCoMo evidence recall, 8K prompt: meaning alone", locomo.get("dense"), "{:.3f}", "MiniLM 0.81 in 4K"),
        ("LoCoMo evidence recall, 2K memory tokens: hybrid", locomo.get("budget_2000"), "{:.3f}", "≥ 0.85"),
        ("40-turn chat: tokens evaluated afresh, median", turns.get("fresh_p50"), "{:,.0f}", "≤ 1,500"),
        ("40-turn chat: tokens evaluated afresh, mean", turns.get("fresh_mean"), "{:,.0f}", "≤ 2,500"),
        ("40-turn chat: share of the evidence in the prompt", turns.get("share"), "{:.3f}", "≥ 0.89"),
        *(
            (
                f"recall p50 / p95 ms, {size:,} memories",
                f"{scale[f'{size}_p50']:.2f} / {scale[f'{size}_p95']:.2f}",
                "",
                "p50 ≤ 5 ms at 1M",
            )
            for size in sorted({int(k.split("_")[0]) for k in scale})
        ),
        ("req/s, gateway with memory off", overhead.get("off_rps"), "{:,.0f}", ""),
        ("req/s, gateway with memory on (5k memories)", overhead.get("on_rps"), "{:,.0f}", ""),
        ("req/s, LiteLLM proxy", overhead.get("litellm_rps"), "{:,.0f}", ""),
        ("memory on / LiteLLM", overhead.get("on_rps", math.nan) / litellm, "{:.2f}x", "≥ 2x"),
        ("streaming: first byte added, ms", streaming.get("added_ms"), "{:.2f}", ""),
        ("streaming: chunks/s relayed", streaming.get("chunks_per_s"), "{:,.0f}", ""),
        ("slowest /health while the largest requests are served, ms", stall.get("slowest_ms"), "{:.0f}", ""),
    ]
    lines = ["| figure | value | goal |", "|---|---:|---|"]
    for label, value, form, goal in rows:
        if isinstance(value, str):
            lines.append(f"| {label} | {value} | {goal} |")
        elif value is not None and not math.isnan(value):
            lines.append(f"| {label} | {form.format(value)} | {goal} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
