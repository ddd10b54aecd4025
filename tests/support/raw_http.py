"""A raw TCP receiver for webhook tests: it reads one HTTP request, then lets the test answer
byte for byte (a NUL in the body, a bad status line, an answer dripped a byte at a time),
which ``http.server`` (``tests.support.webhooks``) cannot send."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class RawReceiver:
    url: str
    request_lines: list[bytes] = field(default_factory=list)  # b"POST /hooks HTTP/1.1", ...

    @property
    def requests(self) -> int:
        return len(self.request_lines)


def _read_request(conn: socket.socket) -> bytes:
    """Reads one request; its request line."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers' end")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the body's end")
        body += chunk
    return head.split(b"\r\n", 1)[0]


@contextmanager
def raw_receiver(
    answer: Callable[[socket.socket], None], *, tls: ssl.SSLContext | None = None
) -> Iterator[RawReceiver]:
    """Listens on 127.0.0.1 (a free port) until the block ends; ``answer`` writes each reply.

    With ``tls`` (a server context), over https."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    scheme = "https" if tls is not None else "http"
    receiver = RawReceiver(f"{scheme}://127.0.0.1:{server.getsockname()[1]}/hooks")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    peer = tls.wrap_socket(conn, server_side=True) if tls is not None else conn
                    with peer:
                        receiver.request_lines.append(_read_request(peer))
                        answer(peer)
                except OSError:  # the client hung up (its deadline), or a test's reply failed
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        stop.set()
        thread.join(10)
        server.close()
