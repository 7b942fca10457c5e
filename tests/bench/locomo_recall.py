"""LoCoMo evidence recall: the share of each question's evidence turns that the gateway puts into the prompt.

    .venv/bin/uv run --group bench python -m tests.bench.locomo_recall [--sweep]

Each conversation of ../shared/locomo is imported as one user's history into the real journal and embedded
index (speaker A as `user`, speaker B as `assistant`, dated by session). Each question of categories 1-4 is
then asked as a new conversation's only message: recall (the product's search and fusion) and assembly (the
product's `prompt.fit`, 8K window, 1,024 kept for the answer) decide which memories go in, and we count the
evidence turns among them. Modes: lexical (words), dense (all-MiniLM-L6-v2 alone), hybrid (both, fused).
Embeddings are cached in ~/.cache/gateway-bench (tests/bench/minilm_cache.py), so each text is embedded once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from gateway import lexical, prompt
from gateway.config import Settings, load
from gateway.index import Scored, Stored
from gateway.memory import Memory, recalled
from gateway.ollama import Ollama
from gateway.protocol import ChatMessage
from gateway.recall import DENSE_WEIGHT, RRF_K, fuse
from gateway.tokens import load_counter
from tests.bench import locomo
from tests.bench.minilm_cache import CACHE, CachedMiniLM

CANDIDATES = 400  # per leg: more than fit in any budget tried
MODES = ("lexical", "dense", "hybrid")
WINDOWS = (2048, 3072, 4096, 6144, 8192, 12288, 16384)  # the sweep's, and the gateway harness's
BUDGETS = (1000, 2000, 4000, 8000)  # memory tokens


def embed_transport(embeddings: CachedMiniLM) -> httpx.MockTransport:
    """MiniLM (cached on disk) behind a fake `/api/embed`."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return httpx.Response(200, json={"model": body["model"], "embeddings": embeddings.embed(texts)})

    return httpx.MockTransport(handle)


@dataclass
class Asked:
    """One question's candidates from both legs, and its evidence as journal message ids."""

    category: int
    question: str
    evidence: set[int]
    semantic: list[Scored] | None
    lexical: list[Scored] | None
    stored: dict[int, Stored]  # the conversation's messages, shared by its questions


async def candidates(conv: locomo.Conversation, embeddings: CachedMiniLM, mode: str) -> list[Asked]:
    """Import one conversation into a fresh memory and search it for every question of categories 1-4."""
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load(
            None,
            {"GATEWAY_MEMORY_DATA_DIR": data_dir, "GATEWAY_EMBEDDING_MODEL": "" if mode == "lexical" else "minilm"},
        )
        async with httpx.AsyncClient(transport=embed_transport(embeddings)) as client:
            memory = await Memory.open(settings, Ollama(client, "http://fake"))
            try:
                await memory.reconcile()
                ids: dict[str, int] = {}
                for n, session in enumerate(conv.sessions, start=1):
                    rows = [(t.role, t.text, t.created_at.timestamp(), t.speaker) for t in session]
                    added = await memory.journal.add_messages(conv.sample_id, f"{conv.sample_id}-s{n}", rows)
                    ids.update(zip((t.dia_id for t in session), added, strict=True))
                await memory.drain()
                stored = {s.id: s for s in await memory.index.fetch(conv.sample_id, list(ids.values()))}
                questions = [q for q in conv.questions if q.category <= 4]
                return [await ask(memory, conv.sample_id, q, ids, mode, stored) for q in questions]
            finally:
                await memory.close()


async def ask(
    memory: Memory, user: str, q: locomo.Question, ids: dict[str, int], mode: str, stored: dict[int, Stored]
) -> Asked:
    vectors = await memory.embedder.embed([q.question]) if mode != "lexical" else None
    dense = vectors[0] if vectors else None
    semantic, words = await memory.index.search(user, dense=dense, sparse=lexical.query(q.question), limit=CANDIDATES)
    return Asked(
        category=q.category,
        question=q.question,
        evidence={ids[e] for e in q.evidence if e in ids},
        semantic=semantic if mode != "lexical" else None,
        lexical=words if mode != "dense" else None,
        stored=stored,
    )


@dataclass(frozen=True)
class Knobs:
    memory_share: float = 1.0
    threshold: float = 0.0
    recency_weight: float = 0.0
    top_k: int = CANDIDATES
    rrf_k: int = RRF_K
    dense_weight: float = DENSE_WEIGHT
    window: int = 8192
    budget: int | None = None  # the most memory tokens (the time budget's share of a turn)


def evidence_recall(asked: list[Asked], knobs: Knobs, count: Callable[[str], int]) -> dict[str, float]:
    """Mean share of evidence in the prompt, overall and per category, and the mean memory tokens."""
    shares: dict[int, list[float]] = defaultdict(list)
    tokens = []
    for a in asked:
        if not a.evidence:
            continue
        ranked = fuse(
            a.semantic,
            a.lexical,
            threshold=knobs.threshold,
            recency_weight=knobs.recency_weight,
            limit=knobs.top_k,
            k=knobs.rrf_k,
            dense_weight=knobs.dense_weight,
        )
        memories = [recalled(a.stored[r.id], r.score) for r in ranked]
        _, budget, _ = prompt.fit(
            [ChatMessage(role="user", content=a.question)],
            window=knobs.window,
            reserve=1024,
            count=count,
            memories=memories,
            memory_share=knobs.memory_share,
            want=knobs.budget,
        )
        shares[a.category].append(len(a.evidence & set(budget.memory_ids)) / len(a.evidence))
        tokens.append(budget.memories)
    result = {locomo.CATEGORIES[c]: statistics.fmean(s) for c, s in sorted(shares.items())}
    result["overall"] = statistics.fmean(x for s in shares.values() for x in s)
    result["memory tokens"] = statistics.fmean(tokens)
    return result


def cached_counter() -> Callable[[str], int]:
    count, _ = load_counter("cl100k_base")
    known: dict[str, int] = {}

    def counted(text: str) -> int:
        if text not in known:
            known[text] = count(text)
        return known[text]

    return counted


def row(label: str, figures: dict[str, float]) -> str:
    cells = " | ".join(f"{v:.3f}" if k != "memory tokens" else f"{v:.0f}" for k, v in figures.items())
    return f"| {label} | {cells} |"


async def gather(conversations: list[locomo.Conversation], reuse: bool) -> dict[str, list[Asked]]:
    """Every question's candidates in every mode (from the cache with `reuse`)."""
    cached = CACHE / "candidates.pickle"
    if reuse and cached.exists():
        result: dict[str, list[Asked]] = pickle.loads(cached.read_bytes())
        return result
    embeddings = CachedMiniLM()
    asked = {mode: [a for conv in conversations for a in await candidates(conv, embeddings, mode)] for mode in MODES}
    if len(conversations) > 1:
        cached.write_bytes(pickle.dumps(asked))
    return asked


def sweep(asked: dict[str, list[Asked]], product: Knobs, count: Callable[[str], int]) -> None:
    """Vary one knob at a time around the product's defaults."""
    for window in WINDOWS:
        for mode in MODES:
            knobs = replace(product, window=window)
            print(row(f"{mode}, window {window}", evidence_recall(asked[mode], knobs, count)), flush=True)
    variations: list[tuple[str, dict[str, Any]]] = [
        *((f"dense weight {w}", {"dense_weight": w}) for w in (1.0, 2.0, 3.0, 4.0, 6.0)),
        *((f"rrf k {k}", {"rrf_k": k}) for k in (1, 10, 60)),
        *((f"threshold {t}", {"threshold": t}) for t in (0.0, 0.05, 0.1, 0.2)),
        *((f"recency {r}", {"recency_weight": r}) for r in (0.0, 0.02, 0.05, 0.1)),
        *((f"top_k {k}", {"top_k": k}) for k in (25, 50, 100, 200, 400)),
    ]
    for label, change in variations:
        print(row(f"hybrid, {label}", evidence_recall(asked["hybrid"], replace(product, **change), count)), flush=True)


async def main(do_sweep: bool, reuse: bool) -> None:
    conversations = locomo.load()
    if os.environ.get("BENCH_QUICK"):  # the README test: one conversation, its first questions
        conversations = conversations[:1]
        conversations[0].questions[40:] = []
        reuse = False
    started = time.monotonic()
    asked = await gather(conversations, reuse)
    count = cached_counter()
    print(f"LoCoMo dev: {len(conversations)} conversations, {len(asked['hybrid'])} questions (categories 1-4)")
    print(f"import, index and search: {time.monotonic() - started:.0f} s\n")
    defaults = Settings().retrieval
    product = Knobs(defaults.memory_share, defaults.relevance_threshold, defaults.recency_weight, defaults.top_k)
    header = "| setting | " + " | ".join([*locomo.CATEGORIES.values()][:4]) + " | overall | memory tokens |"
    print(header + "\n|" + "---|" * (header.count("|") - 1), flush=True)
    for mode in MODES:
        print(row(f"{mode}, defaults", evidence_recall(asked[mode], product, count)), flush=True)
    for budget in BUDGETS:  # a new conversation in a 16K window, the memory tokens capped
        knobs = replace(product, window=16384, budget=budget)
        print(row(f"hybrid, {budget} memory tokens", evidence_recall(asked["hybrid"], knobs, count)), flush=True)
    if do_sweep:
        sweep(asked, product, count)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sweep", action="store_true", help="also try other memory shares, thresholds and fusions")
    parser.add_argument("--reuse", action="store_true", help="reuse the candidates of the last run (same code)")
    options = parser.parse_args()
    asyncio.run(main(options.sweep, options.reuse))
