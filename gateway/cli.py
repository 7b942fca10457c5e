"""The `gateway` command."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway import __version__, config, datadir
from gateway.config import ConfigError, Settings
from gateway.errors import DataDirBusy
from gateway.requestid import RequestIdFilter

log = logging.getLogger("gateway")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"gateway: config error: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.server.log_level)
    if args.command == "serve":
        return serve(settings)
    if args.command == "reindex":
        return _owning_data_dir(settings) or asyncio.run(reindex(settings))
    _parser().print_help()
    return 2


def _owning_data_dir(settings: Settings) -> int:
    """Lock the data dir for this process: 0, or 1 after saying in one line who holds it."""
    try:
        datadir.claim(Path(settings.memory.data_dir))
    except DataDirBusy as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible memory gateway for Ollama.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve_cmd = commands.add_parser("serve", help="run the gateway")
    serve_cmd.add_argument("--config", help="config file (default: $GATEWAY_CONFIG, else ./config.toml)")
    serve_cmd.add_argument("--host", help="address to bind (overrides [server] host)")
    serve_cmd.add_argument("--port", type=int, help="port to bind (overrides [server] port)")
    reindex_cmd = commands.add_parser(
        "reindex", help="rebuild the vector index from the journal (after changing [embedding] model)"
    )
    reindex_cmd.add_argument("--config", help="config file (default: $GATEWAY_CONFIG, else ./config.toml)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    flags = {key: value for key in ("host", "port") if (value := getattr(args, key, None)) is not None}
    path = config.find_config(getattr(args, "config", None), os.environ)
    return config.load(path, os.environ, {"server": flags} if flags else None)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is noise


def serve(settings: Settings) -> int:
    """Run the gateway in this process (uvicorn, uvloop and httptools where installed) until SIGINT/SIGTERM.

    uvicorn over granian by measurement: on the proxied chat route granian (embedded) spent 1.0-1.5 ms of
    CPU per request to uvicorn's 0.73-0.87 ms; granian only led on trivial routes.
    """
    import uvicorn

    from gateway.app import create_app

    host, port = settings.server.host, settings.server.port
    problem = _port_problem(host, port)
    if problem:
        print(f"gateway: cannot listen on {host}:{port}: {problem}", file=sys.stderr)
        return 1
    if busy := _owning_data_dir(settings):
        return busy
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            loop="auto",
            http="auto",
            lifespan="on",
            log_config=None,
            log_level=settings.server.log_level,
            access_log=False,
            timeout_graceful_shutdown=30,
        )
    )
    server.run()
    return 0 if server.started else 1


async def reindex(settings: Settings) -> int:
    """Empty the index and index every journaled message again with the configured embedding model."""
    import httpx

    from gateway.memory import Memory
    from gateway.ollama import Ollama
    from gateway.transport import transport_for

    timeout = httpx.Timeout(settings.upstream.timeout_s, connect=5.0)
    async with httpx.AsyncClient(timeout=timeout, transport=transport_for(settings.upstream.url)) as client:
        memory = await Memory.open(settings, Ollama(client, settings.upstream.url), fresh_index=True)
        try:
            total = (await memory.journal.counts())["messages"]
            bar = Progress("reindex", total)
            done = await memory.reindex(bar.advance)
            bar.close()
            status = await memory.status()
        finally:
            await memory.close()
    how = "meaning and words" if status.retrieval == "hybrid" else f"words alone ({status.degraded})"
    print(f"gateway: indexed {done} messages with {how}; {status.indexed} points in the {status.engine} index")
    return 0 if status.retrieval == "hybrid" or not settings.embedding.model else 1


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


def _port_problem(host: str, port: int) -> str | None:
    """Check the port first, to say in one line what uvicorn would say in a logged traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    "the port is already in use (another gateway?); choose another with --port or GATEWAY_SERVER_PORT"
                )
            return exc.strerror or str(exc)
    return None
