"""LoCoMo evidence recall against the memory budget, as a PNG.

    .venv/bin/uv run --group bench python -m tests.bench.plot [PATH]

Draws what tests/bench/locomo_gateway.py saved last (~/.cache/gateway-bench/locomo_gateway.json): per mode,
the share of the evidence that reached the prompt against the mean memory tokens in it, a point per context
window; with the issue's baselines (plain BM25 and MiniLM alone, retrieved text into 4,000 tokens) and the
goal of 0.90. By default it writes tests/bench/locomo_recall.png.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from tests.bench.minilm_cache import CACHE

RESULTS = CACHE / "locomo_gateway.json"
DEFAULT = Path(__file__).resolve().parent / "locomo_recall.png"
GOAL = 0.90
BASELINES = [("plain BM25", 4000, 0.73), ("MiniLM alone", 4000, 0.81)]  # the issue's: (name, tokens, recall)
LINES = {  # mode: (label, colour)
    "lexical": ("words alone (BM25), by window", "tab:orange"),
    "dense": ("meaning alone (MiniLM), by window", "tab:blue"),
    "hybrid": ("hybrid (the gateway), by window", "tab:green"),
    "hybrid, memory budget": ("hybrid, memory tokens capped at 1K, 2K, 4K, 8K", "tab:red"),
}
# Before the memory block moved into the user message (commit 2b50821: a line per memory, `[date time]
# speaker: text`, and fusion without neighbours or exact matches), at the same caps: the in-process harness
# (tests/bench/locomo_recall.py), 2026-11-29.
BEFORE = [(993, 0.674), (1993, 0.786), (3992, 0.849), (7676, 0.916)]
Figures = dict[str, float]


def draw(results: dict[str, dict[int, Figures]], path: Path, day: str, source: str) -> None:
    """Recall (y) against memory tokens (x), a line per mode with the windows as points."""
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=150, layout="constrained")
    for mode, (label, colour) in LINES.items():
        points = sorted(results.get(mode, {}).items())
        xs, ys = [f["memory tokens"] for _, f in points], [f["overall"] for _, f in points]
        axes.plot(xs, ys, marker="o", color=colour, label=label)
        if mode == "hybrid":
            label_windows(axes, points)
    axes.plot(*zip(*BEFORE, strict=True), marker="x", linestyle="--", color="gray", label="hybrid before, capped")
    for name, tokens, recall in BASELINES:
        axes.scatter([tokens], [recall], marker="*", s=160, color="dimgray", zorder=3)
        axes.annotate(f"{name} (the issue)", (tokens, recall), xytext=(-10, -4), textcoords="offset points", ha="right")
    axes.axhline(GOAL, linestyle="--", color="black", linewidth=1, label=f"goal {GOAL:.2f}")
    axes.set_ylim(top=1.0)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.set_xlabel("mean memory tokens in the prompt (cl100k_base); a point per context window, as labelled")
    axes.set_ylabel("share of the evidence turns in the prompt")
    figure.suptitle(f"LoCoMo (dev split): evidence recall against the memory budget, {day}", fontsize=12)
    axes.set_title(source, fontsize=8.5)
    axes.legend(loc="lower right", fontsize=8)
    figure.savefig(path)
    plt.close(figure)


def label_windows(axes: Axes, points: list[tuple[int, Figures]]) -> None:
    """Name each point by its window; windows that gave the same prompts share one label."""
    labels: dict[tuple[float, float], list[str]] = {}
    for window, f in points:
        labels.setdefault((f["memory tokens"], f["overall"]), []).append(f"{window // 1024}K")
    for xy, windows in labels.items():
        axes.annotate(", ".join(windows), xy, xytext=(0, 7), textcoords="offset points", ha="center")


def load() -> tuple[dict[str, dict[int, Figures]], str, str]:
    """The last saved run: figures by mode and window, its date, and where the figures came from."""
    saved = json.loads(RESULTS.read_text())
    results = {mode: {int(w): f for w, f in by_window.items()} for mode, by_window in saved["results"].items()}
    return results, saved["date"], saved["source"]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    results, day, source = load()
    draw(results, target, day, source)
