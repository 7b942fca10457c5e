"""all-MiniLM-L6-v2 behind an on-disk cache keyed by text, for the LoCoMo benchmarks and the fake Ollama.

The model embeds about ten texts a second on two cores, so each text is embedded once, ever: the vectors
(rounded to 6 decimals, so a cached vector and a fresh one are the same) are appended as JSON lines
`[text, vector]` to ~/.cache/gateway-bench/minilm.jsonl. Appending keeps what a stopped process embedded,
and lets the in-process harness and the fake Ollama share the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.bench.minilm import MiniLM

CACHE = Path.home() / ".cache" / "gateway-bench"
DECIMALS = 6


class CachedMiniLM:
    """MiniLM's vectors as lists of floats, from the cache when it has them; the model loads on first miss."""

    def __init__(self, path: Path = CACHE / "minilm.jsonl") -> None:
        self._path = path
        self._known: dict[str, list[float]] = dict(_read(path))
        self._model: MiniLM | None = None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._known]
        if missing:
            self._model = self._model or MiniLM.load()
            vectors = self._model.embed(missing)
            fresh = {t: [round(float(x), DECIMALS) for x in v] for t, v in zip(missing, vectors, strict=True)}
            self._known.update(fresh)
            self._append(fresh)
        return [self._known[t] for t in texts]

    def _append(self, fresh: dict[str, list[float]]) -> None:
        """One write per batch, so that two processes appending at once do not interleave their lines."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as file:
            file.write("".join(json.dumps([text, vector]) + "\n" for text, vector in fresh.items()))


def _read(path: Path) -> Iterator[tuple[str, list[float]]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as file:
        for line in file:
            text, vector = json.loads(line)
            yield text, vector
