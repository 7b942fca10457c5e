"""A relayed answer as a streamed HTTP response, for every front door."""

from __future__ import annotations

from litestar.background_tasks import BackgroundTask
from litestar.response import Stream

from gateway.relay import Relay

NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # proxies pass each frame at once


def streamed(relay: Relay) -> Stream:
    return Stream(
        relay,
        media_type=relay.framer.media_type,
        headers={**NO_BUFFERING, **relay.headers},
        background=BackgroundTask(relay.aclose),
    )
