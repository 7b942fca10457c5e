"""A lean HTTP/1.1 keep-alive transport for httpx, for the one plain-HTTP upstream (Ollama).

Why: httpcore polls every idle pooled connection on each request and wraps every socket operation in an
anyio cancel scope; measured here that cost ~1 ms of CPU per upstream call, more than the rest of the
gateway. This transport keeps a LIFO pool of asyncio streams, writes each request in one `send`, and reads
Content-Length, chunked or close-delimited bodies. httpx stays the client API (timeouts, errors, streaming).

A pooled connection that the server closed while idle fails before any response byte; such a request is
sent once more on a fresh connection (the server never saw it). A body not read to its end closes its
connection, which is also how a cancelled stream tells Ollama to stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx

IDLE_EXPIRY_S = 30.0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()
        self.reused = False

    def usable(self) -> bool:
        return not self.reader.at_eof() and time.monotonic() - self.idle_since < IDLE_EXPIRY_S

    def close(self) -> None:
        self.writer.close()


class _StaleConnection(Exception):
    """A reused connection was closed by the server before it answered."""


class UpstreamTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_idle: int = 64) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._max_idle = max_idle

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"this transport speaks plain http, not {request.url.scheme}")
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        payload = _encode(request, await request.aread())
        while True:
            connection = await self._checkout(request, timeouts.get("connect"))
            try:
                return await self._exchange(connection, request, payload, timeouts.get("read"))
            except _StaleConnection:
                continue  # the server closed it while idle: it never saw this request

    async def _exchange(
        self, connection: _Connection, request: httpx.Request, payload: bytes, read_timeout: float | None
    ) -> httpx.Response:
        try:
            connection.writer.write(payload)
            async with asyncio.timeout(read_timeout):
                head = await connection.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            connection.close()
            if connection.reused and not getattr(exc, "partial", b""):
                raise _StaleConnection from exc
            raise httpx.RemoteProtocolError(f"upstream closed the connection: {exc!r}", request=request) from exc
        except TimeoutError as exc:
            connection.close()
            raise httpx.ReadTimeout(f"no answer within {read_timeout} s", request=request) from exc
        except asyncio.LimitOverrunError as exc:
            connection.close()
            raise httpx.RemoteProtocolError("response head too large", request=request) from exc
        except BaseException:
            connection.close()
            raise
        status, reason, headers = _parse_head(head, request)
        stream = _Body(self, connection, headers, request, read_timeout)
        return httpx.Response(
            status,
            headers=headers,
            stream=stream,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _checkout(self, request: httpx.Request, connect_timeout: float | None) -> _Connection:
        key = (request.url.host, request.url.port or 80)
        idle = self._idle.get(key, [])
        while idle:
            connection = idle.pop()
            if connection.usable():
                connection.reused = True
                return connection
            connection.close()
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(*key, limit=2**20)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connect to {key[0]}:{key[1]} timed out", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        return _Connection(reader, writer)

    def checkin(self, connection: _Connection, key: tuple[str, int]) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self._max_idle or not connection.usable():
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


class _Body(httpx.AsyncByteStream):
    """A response body; the connection goes back to the pool only when the body was read to its end."""

    def __init__(
        self,
        transport: UpstreamTransport,
        connection: _Connection,
        headers: list[tuple[bytes, bytes]],
        request: httpx.Request,
        read_timeout: float | None,
    ) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._request = request
        self._timeout = read_timeout
        fields = {name.lower(): value for name, value in headers}
        self._chunked = b"chunked" in fields.get(b"transfer-encoding", b"").lower()
        length = fields.get(b"content-length")
        self._length = int(length) if length is not None and not self._chunked else None
        self._keep_alive = fields.get(b"connection", b"").lower() != b"close" and (
            self._chunked or self._length is not None
        )
        if request.method == "HEAD":
            self._length = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        try:
            async for part in self._parts(connection.reader):
                yield part
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no data within {self._timeout} s", request=self._request) from exc
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError) as exc:
            raise httpx.RemoteProtocolError(f"upstream broke the response: {exc!r}", request=self._request) from exc
        self._connection = None
        if self._keep_alive:
            url = self._request.url
            self._transport.checkin(connection, (url.host, url.port or 80))
        else:
            connection.close()

    async def _parts(self, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
        """The body's bytes as they come; each read (never a yield) is under the read timeout."""
        timeout = self._timeout
        if self._chunked:
            while True:
                async with asyncio.timeout(timeout):
                    size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                    if size == 0:
                        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                            pass
                        return
                    part = (await reader.readexactly(size + 2))[:-2]
                yield part
        elif self._length is not None:
            remaining = self._length
            while remaining:
                async with asyncio.timeout(timeout):
                    part = await reader.read(min(remaining, 65536))
                if not part:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(part)
                yield part
        else:
            while True:
                async with asyncio.timeout(timeout):
                    part = await reader.read(65536)
                if not part:
                    return
                yield part

    async def aclose(self) -> None:
        if self._connection is not None:  # not read to the end: the connection is in an unknown state
            self._connection.close()
            self._connection = None


def _encode(request: httpx.Request, body: bytes) -> bytes:
    target = request.url.raw_path.decode("ascii")
    lines = [f"{request.method} {target} HTTP/1.1".encode()]
    # the body was read whole, so it goes with a Content-Length, never chunked
    lines += [name + b": " + value for name, value in request.headers.raw if name.lower() != b"transfer-encoding"]
    if body and "content-length" not in request.headers:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _parse_head(head: bytes, request: httpx.Request) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    try:
        status_line, *lines = head[:-4].split(b"\r\n")
        _, status, *reason = status_line.split(b" ", 2)
        headers = []
        for line in lines:
            name, _, value = line.partition(b":")
            headers.append((name.strip(), value.strip()))
        return int(status), reason[0] if reason else b"", headers
    except ValueError as exc:
        raise httpx.RemoteProtocolError(f"malformed response head: {head[:80]!r}", request=request) from exc


def transport_for(url: str) -> httpx.AsyncBaseTransport | None:
    """Our transport for a plain-HTTP upstream; None (httpx's default) for https."""
    return UpstreamTransport() if url.startswith("http://") else None
