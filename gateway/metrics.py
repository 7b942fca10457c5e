"""What the gateway is doing, for Prometheus (`GET /metrics`, its text format).

One registry per app, made in `create_app` and handed to whoever counts: requests by route and status, Ollama's
calls, the time to an answer's first byte, recall, the prompt's tokens by part and those the model evaluates
afresh. What the memory holds (outbox, points, journal size, degraded) is read when Prometheus scrapes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from gateway.memory import Memory
    from gateway.prompt import Budget

CONTENT_TYPE = "text/plain; version=0.0.4"  # Prometheus' text format (Litestar adds the charset)
FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # the gateway's own work
SLOW = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)  # a local model's
COUNTS = (0, 1, 2, 4, 8, 16, 32, 64, 128)
PARTS = ("system", "tools", "core", "history", "memories")


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=registry
        )
        self.request_seconds = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer an HTTP request, to its last byte",
            ["route", "method"],
            buckets=SLOW,
            registry=registry,
        )
        self.upstream = Counter(
            "gateway_upstream_requests", "Requests to Ollama, by outcome", ["endpoint", "outcome"], registry=registry
        )
        self.upstream_seconds = Histogram(
            "gateway_upstream_duration_seconds",
            "Time Ollama took to answer (a stream: to its first line)",
            ["endpoint"],
            buckets=SLOW,
            registry=registry,
        )
        self.first_byte = Histogram(
            "gateway_time_to_first_byte_seconds",
            "From a chat request to the first byte of its answer (streamed) or the whole answer",
            ["streamed"],
            buckets=SLOW,
            registry=registry,
        )
        self.recall_seconds = Histogram(
            "gateway_recall_duration_seconds", "Time to recall a user's memories", buckets=FAST, registry=registry
        )
        self.injected = Histogram(
            "gateway_memories_injected", "Memories added to a prompt", buckets=COUNTS, registry=registry
        )
        self.prompt_tokens = Counter(
            "gateway_prompt_tokens", "Prompt tokens sent to the model, by part", ["part"], registry=registry
        )
        self.fresh_tokens = Counter(
            "gateway_prompt_tokens_fresh",
            "Prompt tokens the model evaluates afresh (past what its cache holds of the prompt before)",
            registry=registry,
        )
        self.outbox = Gauge("gateway_outbox_backlog", "Memories journaled, waiting to be indexed", registry=registry)
        self.indexed = Gauge("gateway_index_points", "Memories in the vector index", registry=registry)
        self.journal_bytes = Gauge("gateway_journal_bytes", "Size of the SQLite journal", registry=registry)
        self.journal_messages = Gauge("gateway_journal_messages", "Memories in the journal", registry=registry)
        self.degraded = Gauge(
            "gateway_memory_degraded", "1 while recall works on words alone (no embeddings)", registry=registry
        )
        self.rebuilding = Gauge(
            "gateway_index_rebuilding", "1 while a damaged part of the index is built again", registry=registry
        )

    def sent(self, budget: Budget) -> None:
        """A prompt went to the model: its tokens by part, and those it evaluates afresh."""
        parts = (budget.system, budget.tools, budget.core, budget.recent, budget.memories)
        for part, tokens in zip(PARTS, parts, strict=True):
            self.prompt_tokens.labels(part).inc(tokens)
        self.fresh_tokens.inc(budget.fresh)
        self.injected.observe(len(budget.memory_ids))

    async def exposition(self, memory: Memory) -> bytes:
        """The text Prometheus scrapes, with what the memory holds read now."""
        status = await memory.status()
        self.outbox.set(status.journal["outbox"] + status.journal["lexical_only"])
        self.indexed.set(status.indexed)
        self.journal_bytes.set(status.journal_bytes)
        self.journal_messages.set(status.journal["messages"])
        self.degraded.set(1 if status.degraded else 0)
        self.rebuilding.set(1 if status.rebuilding else 0)
        return generate_latest(self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Count each answered request by its route's template (not its path: ids would explode the labels)."""

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started, status = time.perf_counter(), 500

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                route, method = scope.get("path_template", "unmatched"), scope["method"]
                self.requests.labels(route, method, str(status)).inc()
                self.request_seconds.labels(route, method).observe(time.perf_counter() - started)

        return middleware
