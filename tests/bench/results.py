"""Figures a benchmark hands to the runner (`python -m tests.bench`) for its summary table.

The runner names a folder in `BENCH_RESULTS`; each benchmark writes its headline figures there as JSON.
Run alone, a benchmark only prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FOLDER = "BENCH_RESULTS"


def record(name: str, figures: dict[str, float]) -> None:
    folder = os.environ.get(FOLDER)
    if folder:
        (Path(folder) / f"{name}.json").write_text(json.dumps(figures))


def recorded(folder: Path, name: str) -> dict[str, float]:
    path = folder / f"{name}.json"
    figures: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
    return figures
