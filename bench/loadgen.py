"""A closed-loop HTTP/1.1 load generator on asyncio streams.

Each of ``concurrency`` workers keeps one connection and sends its next
request as soon as the previous answer is in, so the offered load adapts to
the server (closed loop) and latency includes any queueing at the server.
Connections are kept alive when the server allows it; gunicorn's sync
workers close after every response, and then the next request reconnects
(the connect is part of its latency, as for a real client).

It is hand-written rather than a library so that it needs nothing beyond the
standard library and costs little CPU: on a 2-core machine the client shares
the cores with the server it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.scenarios import Request, Scenario

REQUEST_TIMEOUT_S = 30.0
WARMUP_MAX = 16


@dataclass
class Target:
    """Where to send requests, and the headers every request carries."""

    host: str
    port: int
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """The server closed or garbled the connection."""


class Connection:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        # Seconds of the last answer's Retry-After (a 503 that sheds load), else None.
        self.retry_after: float | None = None
        common = {"Host": f"{target.host}:{target.port}", **target.headers}
        self.common = "".join(f"{k}: {v}\r\n" for k, v in common.items())

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def send(self, req: Request) -> tuple[int, bytes]:
        """Send ``req``; return (status, body)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.target.host, self.target.port
            )
        assert self.reader is not None
        body = req.body or b""
        head = f"{req.method} {req.path} HTTP/1.1\r\n{self.common}"
        if req.body is not None:
            head += f"Content-Type: {req.content_type}\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status, headers = await self._read_head()
        payload = await self._read_body(headers)
        retry = headers.get("retry-after", "")
        self.retry_after = float(retry) if status == 503 and retry.isdigit() else None
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, payload

    async def _read_head(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise HttpError("connection closed before a response") from exc
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"bad status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if parts[0] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
            headers["connection"] = "close"  # HTTP/1.0 closes unless it says otherwise
        return int(parts[1]), headers

    async def _read_body(self, headers: dict[str, str]) -> bytes:
        assert self.reader is not None
        if "content-length" in headers:
            return await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readline()
            await self.reader.readline()
            return b"".join(chunks)
        if headers.get("connection", "").lower() == "close":
            return await self.reader.read()
        return b""


@dataclass
class Sample:
    label: str
    seconds: float
    ok: bool


@dataclass
class Outcome:
    """What one measured run produced."""

    samples: list[Sample]
    elapsed_s: float
    failures: list[str]
    # CPU the load generator itself used, in cores (it shares the machine).
    client_cpu: float = 0.0


Recorder = Callable[[Sample], None]


async def timed_send(conn: Connection, req: Request) -> tuple[int, bytes, float]:
    """Send ``req``: its status (0 when the connection failed or timed out, the connection
    then closed), its body (or the error) and its latency in seconds."""
    started = time.perf_counter()
    try:
        status, body = await asyncio.wait_for(conn.send(req), REQUEST_TIMEOUT_S)
    except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError) as exc:
        await conn.close()
        status, body = 0, repr(exc).encode()
    return status, body, time.perf_counter() - started


async def _worker(
    index: int,
    conn: Connection,
    scenario: Scenario,
    deadline: float,
    budget: list[int],
    record: Recorder | None,
    failures: list[str],
) -> None:
    while time.perf_counter() < deadline and budget[0] > 0:
        req = scenario.next(index)
        if req is None:
            return
        budget[0] -= 1
        status, body, seconds = await timed_send(conn, req)
        ok = status == req.expect
        if ok:
            scenario.done(index, req, body)
        elif len(failures) < 5:
            failures.append(f"{req.method} {req.path} -> {status}: {body[:200]!r}")
        if record is not None:
            record(Sample(req.label, seconds, ok))
        if not ok and conn.retry_after:
            # Shed with 503 + Retry-After: wait as asked, as a polite client would.
            await asyncio.sleep(max(0.0, min(conn.retry_after, deadline - time.perf_counter())))


async def _phase(
    conns: list[Connection],
    scenario: Scenario,
    seconds: float,
    max_requests: int,
    record: Recorder | None,
    failures: list[str],
) -> float:
    started = time.perf_counter()
    budget = [max_requests]
    await asyncio.gather(
        *(
            _worker(i, c, scenario, started + seconds, budget, record, failures)
            for i, c in enumerate(conns)
        )
    )
    return time.perf_counter() - started


async def _run(
    target: Target,
    scenario: Scenario,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    max_requests: int,
) -> Outcome:
    conns = [Connection(target) for _ in range(concurrency)]
    samples: list[Sample] = []
    failures: list[str] = []
    try:
        # A few requests warm the server's caches; more would only make a slow
        # operation's run wait out its queue once more.
        await _phase(conns, scenario, warmup_s, min(2 * concurrency, WARMUP_MAX), None, [])
        cpu = time.process_time()
        elapsed = await _phase(conns, scenario, duration_s, max_requests, samples.append, failures)
        cpu = time.process_time() - cpu
        for req in scenario.cleanup():
            await conns[0].send(req)
    finally:
        for conn in conns:
            await conn.close()
    return Outcome(samples, elapsed, failures, cpu / elapsed if elapsed > 0 else 0.0)


async def _beside(
    primary: tuple[Target, Scenario, int],
    background: tuple[Target, Scenario, int],
    lead_s: float,
    warmup_s: float,
    duration_s: float,
    max_requests: int,
) -> tuple[Outcome, Outcome]:
    """``primary`` measured while ``background`` runs from ``lead_s`` before to its end."""
    b_target, b_scenario, b_c = background
    bg = asyncio.create_task(
        _run(b_target, b_scenario, b_c, lead_s, warmup_s + duration_s + lead_s, 1_000_000)
    )
    await asyncio.sleep(lead_s)
    p_target, p_scenario, p_c = primary
    measured = await _run(p_target, p_scenario, p_c, warmup_s, duration_s, max_requests)
    return measured, await bg


def measure_beside(
    primary: tuple[Target, Scenario, int],
    background: tuple[Target, Scenario, int],
    warmup_s: float,
    duration_s: float,
    max_requests: int,
    lead_s: float = 0.5,
) -> tuple[Outcome, Outcome]:
    """Measure ``primary`` (target, scenario, concurrency) while ``background`` loads the
    same server: it starts ``lead_s`` earlier and runs until about as long after."""
    return asyncio.run(_beside(primary, background, lead_s, warmup_s, duration_s, max_requests))


def measure(
    target: Target,
    scenario: Scenario,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    max_requests: int,
) -> Outcome:
    """Warm up, then measure for ``duration_s`` or ``max_requests``, whichever ends first."""
    return asyncio.run(_run(target, scenario, concurrency, warmup_s, duration_s, max_requests))
