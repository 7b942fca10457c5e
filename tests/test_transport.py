"""The upstream transport against a real socket server that answers with scripted bytes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from gateway.errors import UpstreamTimeout
from gateway.ollama import Ollama
from gateway.transport import UpstreamTransport, transport_for

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Scripted:
    """A TCP server; `handler(reader, writer, n)` answers the n-th connection (from 0)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed_by_client = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = self.connections
        self.connections += 1
        try:
            await self.handler(reader, writer, n)
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=UpstreamTransport(), timeout=httpx.Timeout(2.0)) as client:
        yield client


async def serving(handler: Handler) -> tuple[Scripted, str, asyncio.Server]:
    scripted = Scripted(handler)
    server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return scripted, f"http://127.0.0.1:{port}", server


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body


async def test_keep_alive_reuses_one_connection_and_sends_the_body(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            try:
                request = await scripted.read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(ok(b"got " + request.split(b"\r\n\r\n")[1]))

    scripted, url, server = await serving(handler)
    async with server:
        for i in range(3):
            response = await client.post(url + "/api/chat?x=1", content=f"body{i}".encode())
            assert (response.status_code, response.text) == (200, f"got body{i}")
    assert scripted.connections == 1
    first = scripted.requests[0]
    assert first.startswith(b"POST /api/chat?x=1 HTTP/1.1\r\n")
    assert b"\r\ncontent-length: 5\r\n" in first.lower()


async def test_chunked_body_split_anywhere_with_trailers(client: httpx.AsyncClient) -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\nline1\n\r\n"
        b"6;ext=1\r\nline2\n\r\n"
        b"0\r\nX-Trailer: t\r\n\r\n"
    )

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await scripted.read_request(reader)
        for i in range(0, len(wire), 7):  # every 7 bytes: inside sizes, data and CRLFs
            writer.write(wire[i : i + 7])
            await writer.drain()
            await asyncio.sleep(0.001)
        await scripted.read_request(reader)
        writer.write(ok(b"again"))

    scripted, url, server = await serving(handler)
    async with server, client.stream("POST", url + "/api/chat", content=b"{}") as response:
        lines = [line async for line in response.aiter_lines()]
    assert lines == ["line1", "line2"]
    async with server:
        assert (await client.get(url)).text == "again"
    assert scripted.connections == 1  # chunked bodies read to the end leave the connection reusable


async def test_connection_close_and_close_delimited_bodies(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await scripted.read_request(reader)
        if n == 0:
            writer.write(ok(b"closing", b"Connection: close\r\n"))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")

    scripted, url, server = await serving(handler)
    async with server:
        assert (await client.get(url)).text == "closing"
        assert (await client.get(url)).text == "until the end"
    assert scripted.connections == 2


async def test_a_stale_pooled_connection_is_retried_on_a_fresh_one(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await scripted.read_request(reader)
        writer.write(ok(f"conn{n}".encode()))
        await writer.drain()
        # then close while the client holds it idle, as a server's idle timeout does

    scripted, url, server = await serving(handler)
    async with server:
        assert (await client.get(url)).text == "conn0"
        assert (await client.post(url, content=b"x")).text == "conn1"
    assert scripted.connections == 2


async def test_a_fresh_connection_closed_before_answering_is_an_error(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await scripted.read_request(reader)

    scripted, url, server = await serving(handler)
    async with server:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url)
    assert scripted.connections == 1


async def test_eof_in_the_middle_of_a_body(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await scripted.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    scripted, url, server = await serving(handler)
    async with server:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url)


async def test_read_timeouts_before_and_during_the_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await scripted.read_request(reader)
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n")
        await asyncio.sleep(5)

    scripted, url, server = await serving(handler)
    async with server, httpx.AsyncClient(transport=UpstreamTransport(), timeout=httpx.Timeout(0.2)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url)
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url)


async def test_a_slow_consumer_is_not_timed_out() -> None:
    """The read timeout covers waiting for the server, never the time the caller spends between reads."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await scripted.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n")

    scripted, url, server = await serving(handler)
    parts = []
    async with (
        server,
        httpx.AsyncClient(transport=UpstreamTransport(), timeout=httpx.Timeout(0.1)) as client,
        client.stream("GET", url) as response,
    ):
        async for part in response.aiter_raw():
            parts.append(part)
            await asyncio.sleep(0.3)
    assert parts == [b"a", b"b"]


async def test_an_abandoned_body_closes_its_connection(client: httpx.AsyncClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await scripted.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        if not await reader.read(1):  # the client hung up: Ollama would stop generating here
            scripted.closed_by_client.set()

    scripted, url, server = await serving(handler)
    async with server:
        async with client.stream("GET", url) as response:
            async for part in response.aiter_raw():
                assert part == b"first"
                break
        await asyncio.wait_for(scripted.closed_by_client.wait(), 2)


async def test_connection_refused_is_a_connect_error(client: httpx.AsyncClient) -> None:
    _, url, server = await serving(lambda r, w, n: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    with pytest.raises(httpx.ConnectError):
        await client.get(url)


def test_https_upstreams_keep_httpx_default_transport() -> None:
    assert transport_for("https://ollama.example") is None
    assert isinstance(transport_for("http://127.0.0.1:11434"), UpstreamTransport)


async def test_ollama_sends_whole_requests_to_the_transport_directly() -> None:
    """Ollama's JSON calls skip the httpx client's layers but keep its timeouts; the server sees the same request."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            request = await scripted.read_request(reader)
            if b"slow" in request:
                await asyncio.sleep(5)
            writer.write(ok(b'{"model": "m", "embeddings": [[0.5, 0.25]]}'))

    scripted, url, server = await serving(handler)
    unused = httpx.MockTransport(lambda request: httpx.Response(500))  # the client's own layers are skipped
    async with server, httpx.AsyncClient(transport=unused, timeout=httpx.Timeout(0.2)) as client:
        ollama = Ollama(client, url, direct=UpstreamTransport())
        answer = await ollama.embed({"model": "m", "input": ["hello"]})
        assert answer.embeddings == [[0.5, 0.25]]
        head, _, body = scripted.requests[0].partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0] == b"POST /api/embed HTTP/1.1"
        assert b"host: 127.0.0.1:" in head.lower()
        assert b"content-type: application/json" in head.lower()
        assert json.loads(body) == {"model": "m", "input": ["hello"]}
        with pytest.raises(UpstreamTimeout):
            await ollama.embed({"model": "m", "input": ["slow"]})


async def test_ollama_closes_a_connection_whose_body_broke_off() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await scripted.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"model": ')
        await writer.drain()
        if not await reader.read(1):  # the client hung up
            scripted.closed_by_client.set()

    scripted, url, server = await serving(handler)
    async with server, httpx.AsyncClient(timeout=httpx.Timeout(0.2)) as client:
        ollama = Ollama(client, url, direct=UpstreamTransport())
        with pytest.raises(UpstreamTimeout):
            await ollama.embed({"model": "m", "input": ["hello"]})
        await asyncio.wait_for(scripted.closed_by_client.wait(), 2)
