"""The commands that work on memory without serving: `reindex`, `import`, `export` (the lock is the CLI's)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import msgspec

from gateway import transfer
from gateway.config import Settings
from gateway.consolidate import Consolidator
from gateway.errors import GatewayError
from gateway.memory import Memory, MemoryStatus
from gateway.ollama import Ollama
from gateway.tokens import load_counter
from gateway.transport import transport_for


@asynccontextmanager
async def opened(settings: Settings, *, fresh_index: bool = False) -> AsyncIterator[Memory]:
    timeout = httpx.Timeout(settings.upstream.timeout_s, connect=5.0)
    async with httpx.AsyncClient(timeout=timeout, transport=transport_for(settings.upstream.url)) as client:
        memory = await Memory.open(settings, Ollama(client, settings.upstream.url), fresh_index=fresh_index)
        try:
            yield memory
        finally:
            await memory.close()


async def reindex(settings: Settings) -> int:
    """Empty the index and index every journaled message again with the configured embedding model."""
    async with opened(settings, fresh_index=True) as memory:
        bar = Progress("reindex", (await memory.journal.counts())["messages"])
        done = await memory.reindex(bar.advance)
        bar.close()
        status = await memory.status()
    print(f"gateway: indexed {done} messages with {_how(status)}; {status.indexed} points in the {status.engine} index")
    return 0 if status.retrieval == "hybrid" or not settings.embedding.model else 1


async def import_file(settings: Settings, path: Path, user: str) -> int:
    """Import a file of conversations (and, from an export, core memory and notes), then index it."""
    try:
        data = transfer.parse(await asyncio.to_thread(path.read_bytes))
    except (OSError, GatewayError) as exc:
        print(f"gateway: cannot import {path}: {exc}", file=sys.stderr)
        return 1
    async with opened(settings) as memory:
        await memory.reconcile()
        imported = await transfer.import_memory(memory, user, data)
        bar = Progress("index", (await memory.journal.counts())["outbox"])
        await memory.drain(bar.advance)
        bar.close()
        status = await memory.status()
    print(
        f"gateway: imported {imported.messages} messages in {imported.conversations} conversations,"
        f" {imported.core} core blocks and {imported.notes} notes for user {user}; indexed with {_how(status)}"
        + (f"; {imported.already} already remembered, left out" if imported.already else "")
    )
    return 0


async def export_user(settings: Settings, user: str, output: Path | None) -> int:
    count, _ = load_counter(settings.model.tokenizer)
    async with opened(settings) as memory:
        exported = await transfer.export(memory, user, count)
    data = msgspec.json.format(msgspec.json.encode(exported), indent=2) + b"\n"
    if output:
        await asyncio.to_thread(output.write_bytes, data)
        print(f"gateway: wrote {len(exported.conversations)} conversations of user {user} to {output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0


async def forget_conversation(settings: Settings, user: str, conversation: str) -> int:
    """Forget one conversation of a user; 1 if there was none."""
    async with opened(settings) as memory:
        deleted = await memory.forget_conversation(user, conversation)
        await memory.index.flush()
    if not deleted:
        print(f"gateway: no conversation {conversation!r} for user {user}", file=sys.stderr)
        return 1
    print(f"gateway: forgot {deleted} messages of conversation {conversation} of user {user}")
    return 0


async def consolidate(settings: Settings, user: str | None) -> int:
    """Consolidate one user's older conversations, or every user's."""
    count, _ = load_counter(settings.model.tokenizer)
    async with opened(settings) as memory:
        users = [user] if user else await memory.journal.users()
        consolidator = Consolidator(memory, memory.embedder.ollama, count, settings)
        failed = 0
        for name in users:
            bar = Progress(f"consolidate {name}", len(await consolidator.pending(name)))
            run = await consolidator.run(name, advance=bar.advance)
            bar.close()
            if run.state == "failed":
                failed += 1
                print(f"gateway: consolidating {name} failed: {run.error}", file=sys.stderr)
            else:
                proposed = "".join(f"\n  proposed for core memory: {fact}" for fact in run.proposed)
                print(f"gateway: {name}: {run.summaries} conversations summarised{proposed}")
        await memory.drain()
    return 1 if failed else 0


def _how(status: MemoryStatus) -> str:
    return "meaning and words" if status.retrieval == "hybrid" else f"words alone ({status.degraded})"


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, label: str, total: int, width: int = 30) -> None:
        self._label, self._total, self._width, self._done = label, total, width, 0
        self._draw()

    def advance(self, n: int) -> None:
        self._done += n
        self._draw()

    def close(self) -> None:
        print(file=sys.stderr)

    def _draw(self) -> None:
        share = self._done / self._total if self._total else 1.0
        filled = round(share * self._width)
        bar = "#" * filled + "." * (self._width - filled)
        print(f"\r{self._label} [{bar}] {self._done}/{self._total} {share:4.0%}", end="", file=sys.stderr, flush=True)
