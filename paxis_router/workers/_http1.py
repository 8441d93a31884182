"""A lean HTTP/1.1 client for plain ``http://`` servers: one keep-alive pool per event loop.

OpenAICompatWorker's fast path. It sends one ``POST`` and reads one response over a pooled
connection on asyncio streams: a few tens of microseconds of CPU per call, against ~0.5 ms for
httpx (whose pool also scans every connection, twice, on each request). It does only what an
OpenAI-compatible server on the local network needs: Content-Length and chunked bodies, bodies
delimited by the connection's end, keep-alive. No TLS, proxies, redirects or compression: the
worker uses httpx for those.

Failures are raised as the stdlib raises them: ``TimeoutError``, ``OSError`` (refused, reset,
DNS), and :class:`ProtocolError` (a ``ConnectionError``: the server closed the connection
early or sent something that is not HTTP/1.x); a body over its cap is :class:`BodyTooLarge`.

The pool's connections belong to one event loop: they are closed when that loop shuts down
(see ``_loop_guard``), and a call from another loop starts a fresh pool there.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from paxis_router.workers._loop_guard import LoopGuard

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

_NO_BODY = frozenset({204, 304})


class ProtocolError(ConnectionError):
    """The server closed the connection early or did not speak HTTP/1.x. ``empty``: it sent
    nothing at all."""

    def __init__(self, message: str, *, empty: bool = False):
        super().__init__(message)
        self.empty = empty


class StatusError(Exception):
    """A non-2xx response (kept as the ``__cause__`` of the WorkerError it becomes)."""

    def __init__(self, status: int, reason: str, body: bytes):
        self.status = status
        self.reason = reason
        self.body = body
        super().__init__(f"HTTP {status} {reason}".strip())


class BodyTooLarge(Exception):
    """A response body grew past its cap (the connection was closed, the rest left unread)."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"the response body is over {limit} bytes")


class Reply:
    """A response's status line and headers (names lower-cased); the body is read apart."""

    __slots__ = ("headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str]):
        self.status = status
        self.reason = reason
        self.headers = headers


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class ConnectTimeout(TimeoutError):
    """The TCP connection was not established within the connect timeout."""


class ReadTimeout(TimeoutError):
    """The server sent nothing for longer than the read timeout (a stall mid-answer)."""


class Http1Pool:
    """Keep-alive connections to one ``http://host:port`` origin, at most ``max_connections``.

    ``headers`` are sent with every request (``Name: value`` lines, each ending in CRLF).
    """

    def __init__(
        self,
        base_url: str,
        headers: str,
        max_connections: int,
        connect_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"Http1Pool needs an http:// URL, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path_prefix = parts.path.rstrip("/")
        host_header = parts.netloc.rpartition("@")[2]
        self._head_tail = f"Host: {host_header}\r\n{headers}"
        self._max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._idle: list[_Conn] = []
        self._slots: asyncio.Semaphore | None = None
        self._guard = LoopGuard()

    async def _for_loop(self) -> asyncio.Semaphore:
        """The running loop's slots; a pool bound to another loop starts afresh here (the
        other loop's idle connections are closed on it, or when it shuts down)."""
        if self._guard.loop is not asyncio.get_running_loop() or self._slots is None:
            idle: list[_Conn] = []
            self._idle = idle
            self._slots = asyncio.Semaphore(self._max_connections)

            async def close() -> None:
                _close_all(idle)

            await self._guard.bind(close)
        return self._slots

    def _request_bytes(self, path: str, body: bytes, extra: str) -> bytes:
        head = (
            f"POST {self.path_prefix}{path} HTTP/1.1\r\n{self._head_tail}{extra}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode("latin-1") + body

    async def _connection(self, fresh: bool = False) -> tuple[_Conn, bool]:
        """A connection (an idle one unless ``fresh``), and whether it is a reused one."""
        while self._idle and not fresh:
            reader, writer = self._idle.pop()
            if not (reader.at_eof() or writer.is_closing()):
                return (reader, writer), True
            writer.close()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                return await asyncio.open_connection(self.host, self.port, limit=1 << 20), False
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"TCP connect to {self.host}:{self.port} took over {self.connect_timeout_s} s"
            ) from exc

    async def _send(self, path: str, body: bytes, extra: str) -> tuple[_Conn, Reply, bool]:
        """Send the request and read the response head, on a pooled connection when one is
        idle. A reused connection the server closed before answering (its keep-alive ran out
        as we sent) is replaced once by a fresh one."""
        data = self._request_bytes(path, body, extra)
        fresh = False
        while True:
            conn, reused = await self._connection(fresh)
            try:
                conn[1].write(data)
                await conn[1].drain()
                reply, keep = await _read_head(conn[0])
            except (ProtocolError, ConnectionResetError, BrokenPipeError) as exc:
                conn[1].close()
                if reused and getattr(exc, "empty", True):
                    fresh = True
                    continue
                raise
            except BaseException:
                conn[1].close()
                raise
            return conn, reply, keep

    async def post(
        self,
        path: str,
        body: bytes,
        timeout_s: float,
        max_bytes: int | None = None,
        max_error_bytes: int | None = None,
    ) -> tuple[Reply, bytes]:
        """Send ``POST path`` and read the whole answer within ``timeout_s`` seconds (waiting
        for a free connection included), with at most ``read_timeout_s`` of silence from the
        server between sending the request and the first byte of the answer, and between two
        reads of its body.

        A 2xx body over ``max_bytes`` raises :class:`BodyTooLarge`; of any other status's body
        only the first ``max_error_bytes`` are read (the connection is then closed)."""
        slots = await self._for_loop()
        read_s = self.read_timeout_s
        async with asyncio.timeout(timeout_s):
            await slots.acquire()
            try:
                silence = asyncio.timeout(read_s)
                try:
                    async with silence:
                        conn, reply, keep = await self._send(path, body, "")
                        ok = 200 <= reply.status < 300
                        limit = max_bytes if ok else max_error_bytes
                        if ok and limit is not None and _length(reply) > limit:
                            conn[1].close()
                            raise BodyTooLarge(limit)
                        chunks = []
                        size = 0
                        try:
                            async with contextlib.aclosing(_body(conn[0], reply)) as pieces:
                                async for chunk in pieces:
                                    chunks.append(chunk)
                                    size += len(chunk)
                                    if limit is not None and size > limit:
                                        keep = False
                                        conn[1].close()
                                        if ok:
                                            raise BodyTooLarge(limit)
                                        chunks = [b"".join(chunks)[:limit]]
                                        break
                                    if read_s is not None:
                                        now = asyncio.get_running_loop().time()
                                        silence.reschedule(now + read_s)
                        except BaseException:
                            conn[1].close()
                            raise
                except TimeoutError as exc:
                    if silence.expired():
                        raise ReadTimeout(
                            f"{self.host}:{self.port} sent nothing for {read_s} s (read timeout)"
                        ) from exc
                    raise
                data = b"".join(chunks)
            finally:
                slots.release()
        if keep:
            self._idle.append(conn)
        else:
            conn[1].close()
        return reply, data

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, body: bytes, timeout_s: float, accept: str
    ) -> AsyncIterator[tuple[Reply, AsyncGenerator[bytes, None]]]:
        """Send ``POST path``; yields the reply and its body's pieces as they arrive: the
        reply within ``timeout_s`` (waiting for a free connection included), then each piece
        within ``timeout_s`` (or ``read_timeout_s``, when shorter). The connection goes back
        to the pool only when the body was read to its end."""
        slots = await self._for_loop()
        async with asyncio.timeout(timeout_s):
            await slots.acquire()
        try:
            async with asyncio.timeout(timeout_s):
                conn, reply, keep = await self._send(path, body, f"Accept: {accept}\r\n")
            done = False

            gap_s = min(timeout_s, self.read_timeout_s or timeout_s)

            async def pieces() -> AsyncGenerator[bytes, None]:
                nonlocal done
                async with contextlib.aclosing(_body(conn[0], reply)) as chunks:
                    while True:
                        try:
                            async with asyncio.timeout(gap_s):
                                piece = await anext(chunks, None)
                        except TimeoutError as exc:
                            if gap_s < timeout_s:
                                raise ReadTimeout(
                                    f"{self.host}:{self.port} sent nothing for {gap_s} s "
                                    "(read timeout)"
                                ) from exc
                            raise
                        if piece is None:
                            done = True
                            return
                        yield piece

            try:
                yield reply, pieces()
            finally:
                if done and keep:
                    self._idle.append(conn)
                else:
                    conn[1].close()
        finally:
            slots.release()

    async def aclose(self) -> None:
        """Close the idle connections (those of another loop, on that loop)."""
        self._slots = None
        await self._guard.aclose()


def _close_all(idle: list[_Conn]) -> None:
    """Close (and forget) the connections in ``idle``."""
    conns = list(idle)
    idle.clear()
    for _, writer in conns:
        with contextlib.suppress(RuntimeError):  # its event loop may be closed already
            writer.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[Reply, bool]:
    """The status line and headers; whether the connection may be reused afterwards."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("the server closed the connection in the response headers") from exc
        raise ProtocolError(
            "the server closed the connection without a response", empty=True
        ) from exc
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("the response headers are over 1 MiB") from exc
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    status = int(code)
    keep = version == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    framed = chunked or "content-length" in headers
    if not framed and status not in _NO_BODY:
        keep = False  # the body ends with the connection
    return Reply(status, reason.decode("latin-1"), headers), keep


def _length(reply: Reply) -> int:
    """The Content-Length a reply declares; -1 when none (or not a number)."""
    try:
        return int(reply.headers.get("content-length", "-1"))
    except ValueError:
        return -1


async def _body(reader: asyncio.StreamReader, reply: Reply) -> AsyncGenerator[bytes, None]:
    """The body's pieces: chunked, Content-Length, or up to the connection's end."""
    try:
        if reply.status in _NO_BODY or 100 <= reply.status < 200:
            return
        if "chunked" in reply.headers.get("transfer-encoding", "").lower():
            while True:
                line = await reader.readuntil(b"\r\n")
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    return
                left = size
                while left > 0:  # in pieces: a chunk may claim any size
                    data = await reader.read(min(left, 1 << 16))
                    if not data:
                        raise asyncio.IncompleteReadError(b"", left)
                    left -= len(data)
                    yield data
                if await reader.readexactly(2) != b"\r\n":
                    raise ValueError("a chunk does not end in CRLF")
        length = reply.headers.get("content-length")
        if length is not None:
            left = int(length)
            while left > 0:
                data = await reader.read(min(left, 1 << 16))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(data)
                yield data
            return
        while data := await reader.read(1 << 16):
            yield data
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("the server closed the connection in the middle of the body") from exc
    except (asyncio.LimitOverrunError, ValueError) as exc:
        raise ProtocolError(f"a body with malformed framing (chunks or length): {exc}") from exc


async def acquire(slots: asyncio.Semaphore, timeout_s: float) -> None:
    """Take one of ``slots`` within ``timeout_s`` seconds (TimeoutError otherwise)."""
    async with asyncio.timeout(timeout_s):
        await slots.acquire()
