"""The gateway app built from the environment (an ASGI factory), so the benchmark can run it under other servers."""

from __future__ import annotations

import os

from litestar import Litestar

from gateway import config
from gateway.app import create_app


def app() -> Litestar:
    return create_app(config.load(config.find_config(None, os.environ), os.environ))
