"""The same gateway app for uvicorn (`--factory`), so the benchmark can compare ASGI servers."""

from __future__ import annotations

import os

from litestar import Litestar

from gateway import config
from gateway.app import create_app


def app() -> Litestar:
    return create_app(config.load(config.find_config(None, os.environ), os.environ))
