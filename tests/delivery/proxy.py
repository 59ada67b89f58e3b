"""A small TCP proxy for client tests: real dropped connections, lost responses, a record of
what the client sent, and an optional rewrite of its requests (an intermediary that strips
headers)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable

_HEAD = re.compile(rb"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1\r\n(.*?)\r\n\r\n", re.S)


class Proxy:
    """Forwards 127.0.0.1:``port`` to the upstream; see the attributes for the knobs."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.server: asyncio.Server | None = None
        #: While true, new connections are closed at once (the network is down).
        self.down = False
        #: The next response to a POST is swallowed and the client's connection closed, after
        #: the server has fully handled the request (a response lost on the way back).
        self.lose_next_post_response = False
        #: Applied to every chunk the client sends (e.g. to strip a header).
        self.rewrite: Callable[[bytes], bytes] | None = None
        self.sent = bytearray()  # everything clients sent, after rewriting
        self.connections = 0
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        self.drop()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def drop(self) -> None:
        """Cut every open connection (both sides), as a network failure would."""
        for w in list(self._open):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._open.clear()

    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, target, headers with lower-case names) of every request seen so far."""
        out = []
        for m in _HEAD.finditer(bytes(self.sent)):
            headers = {}
            for line in m.group(3).decode().split("\r\n"):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            out.append((m.group(1).decode(), m.group(2).decode(), headers))
        return out

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        if self.down:
            c_writer.transport.abort()
            return
        self.connections += 1
        try:
            u_reader, u_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            c_writer.transport.abort()
            return
        self._open.update((c_writer, u_writer))
        posted = asyncio.Event()

        async def upstream() -> None:
            while data := await c_reader.read(65536):
                if self.rewrite is not None:
                    data = self.rewrite(data)
                self.sent += data
                if data.startswith(b"POST ") and self.lose_next_post_response:
                    self.lose_next_post_response = False
                    posted.set()
                u_writer.write(data)
                await u_writer.drain()

        async def downstream() -> None:
            while data := await u_reader.read(65536):
                if posted.is_set():
                    # The server has answered (it writes the response only after committing
                    # and storing it for the Idempotency-Key): lose it, and the connection.
                    c_writer.transport.abort()
                    u_writer.transport.abort()
                    return
                c_writer.write(data)
                await c_writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (c_writer, u_writer):
                self._open.discard(w)
                with contextlib.suppress(Exception):
                    w.transport.abort()
