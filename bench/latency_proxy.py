"""A TCP proxy on 127.0.0.1 that delays every chunk each way: a remote database, locally.

    .venv/bin/python -m bench.latency_proxy LISTEN_PORT TARGET_PORT [--delay-us 250]

This machine's kernel has no ``netem`` qdisc, so a database "on another host" is this
proxy in front of the local PostgreSQL: each chunk read from one side is sent on to the
other after ``--delay-us`` (``time.sleep``, precise to tens of microseconds, unlike an
event loop's millisecond timer), so a round trip gains about twice the delay (250 us
each way measured 0.68 ms for ``SELECT 1`` through it, 0.03 ms direct). One thread per
direction per connection; it costs some CPU of its own, so compare configurations
through it, not against a run without it. Used for "One SCIM request at a time per
worker" (BENCHMARKS.md): ``bench.threads_cmp --pg-admin-url
postgresql+psycopg://postgres@127.0.0.1:LISTEN_PORT/postgres``.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def _pump(src: socket.socket, dst: socket.socket, delay_s: float) -> None:
    try:
        while data := src.recv(65536):
            time.sleep(delay_s)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def serve(listen_port: int, target_port: int, delay_s: float) -> None:
    """Accept on ``listen_port`` until killed; each connection gets its own upstream one."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, listen_port))
    server.listen(512)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection((HOST, target_port))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(src, dst, delay_s), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency_proxy", description=__doc__)
    parser.add_argument("listen_port", type=int)
    parser.add_argument("target_port", type=int)
    parser.add_argument("--delay-us", type=float, default=250.0, help="added each way")
    args = parser.parse_args(argv)
    serve(args.listen_port, args.target_port, args.delay_us / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
