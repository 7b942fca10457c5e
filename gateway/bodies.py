"""Request bodies taken as strictly as the schema says.

Litestar converts a decoded body leniently, as it must for query strings: `"max_tokens": "10"` became 10 and
went on to Ollama. Before a handler runs, its body is converted once more, strictly, into the type it takes;
a string where the schema says a number is a 400 naming the field, as OpenAI answers it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException

from gateway.errors import InvalidRequest

_WHERE = re.compile(r" - at `\$\.?([^`]*)`$")


async def strictly(request: Request[Any, Any, Any]) -> None:
    """Refuse a body whose values are not of the types its handler takes (Litestar's `before_request`)."""
    field = request.route_handler.parsed_data_field
    if field is None or not await request.body():
        return
    try:
        data = await request.json()
    except SerializationException:  # not JSON: the handler's own decoding says so
        return
    try:
        msgspec.convert(data, field.annotation, strict=True, str_keys=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        where = _WHERE.search(message)
        raise InvalidRequest(message, param=where.group(1) or None if where else None) from exc
