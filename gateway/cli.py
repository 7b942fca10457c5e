"""The `gateway` command."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
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
from gateway.server import HttpProtocol

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
    if args.command == "check":
        from gateway import check

        return asyncio.run(check.run(settings, str(config.find_config(args.config, os.environ) or "defaults")))
    if args.command in ("reindex", "import", "export", "consolidate", "forget"):
        from gateway import commands

        if busy := _owning_data_dir(settings):
            return busy
        if args.command == "reindex":
            return asyncio.run(commands.reindex(settings))
        if args.command == "consolidate":
            return asyncio.run(commands.consolidate(settings, args.user))
        if args.command == "import":
            return asyncio.run(commands.import_file(settings, Path(args.file), args.user))
        if args.command == "forget":
            return asyncio.run(commands.forget_conversation(settings, args.user, args.conversation))
        return asyncio.run(commands.export_user(settings, args.user, Path(args.output) if args.output else None))
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


KEEP_ALIVE_S = 75  # seconds an idle client connection stays open
CONFIG_HELP = "config file (default: $GATEWAY_CONFIG, else ./config.toml)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible memory gateway for Ollama.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve_cmd = commands.add_parser("serve", help="run the gateway")
    serve_cmd.add_argument("--config", help="config file (default: $GATEWAY_CONFIG, else ./config.toml)")
    serve_cmd.add_argument("--host", help="address to bind (overrides [server] host)")
    serve_cmd.add_argument("--port", type=int, help="port to bind (overrides [server] port)")
    check_cmd = commands.add_parser("check", help="check config, Ollama, models, data dir and tokenizer")
    check_cmd.add_argument("--config", help=CONFIG_HELP)
    reindex_cmd = commands.add_parser(
        "reindex", help="rebuild the vector index from the journal (after changing [embedding] model)"
    )
    reindex_cmd.add_argument("--config", help=CONFIG_HELP)
    import_cmd = commands.add_parser(
        "import", help="import conversations (the gateway's JSON shape, or ChatGPT's conversations.json)"
    )
    import_cmd.add_argument("file", help="the JSON file")
    import_cmd.add_argument("--user", required=True, help="the user whose memory they become")
    import_cmd.add_argument("--config", help=CONFIG_HELP)
    consolidate_cmd = commands.add_parser(
        "consolidate", help="summarise older conversations into archival notes, and propose core facts"
    )
    consolidate_cmd.add_argument("--user", help="one user (default: every user)")
    consolidate_cmd.add_argument("--config", help=CONFIG_HELP)
    export_cmd = commands.add_parser("export", help="write everything remembered of a user as JSON")
    export_cmd.add_argument("--user", required=True, help="the user")
    export_cmd.add_argument("-o", "--output", help="the file to write (default: standard output)")
    export_cmd.add_argument("--config", help=CONFIG_HELP)
    forget_cmd = commands.add_parser("forget", help="forget one conversation of a user (journal and index)")
    forget_cmd.add_argument("--user", required=True, help="the user")
    forget_cmd.add_argument(
        "--conversation", required=True, help="its id (Open WebUI's chat id: the end of the chat's address)"
    )
    forget_cmd.add_argument("--config", help=CONFIG_HELP)
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
            http=HttpProtocol,
            lifespan="on",
            log_config=None,
            log_level=settings.server.log_level,
            access_log=False,
            timeout_graceful_shutdown=30,
            # longer than clients keep an idle connection (httpx 5 s, aiohttp 15 s, browsers up to 60 s): a
            # server closing at the very moment a client reuses the connection fails that client's request
            timeout_keep_alive=KEEP_ALIVE_S,
        )
    )
    # A request allocates thousands of short-lived objects (recalled memories, scores) that reference counting
    # frees; collecting cycles every 700 allocations scanned the long-lived caches often (5% of the CPU).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    server.run()
    return 0 if server.started else 1


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
