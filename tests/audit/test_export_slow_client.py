"""A long export read by a slow client through a real gunicorn is complete (issue 15, item 12)."""

from __future__ import annotations

from bench.export_slow_client import Server, seed, slow_read

EVENTS = 15_000  # ~15 MB of NDJSON: far more than the socket buffers hold


def test_a_slow_client_gets_the_whole_export_past_the_worker_timeout(tmp_path):
    """At 3 MB/s the export outlasts a 2 s worker timeout and still ends with its manifest."""
    db_url = f"sqlite:///{tmp_path / 'export.db'}"
    _org_id, token = seed(db_url, EVENTS)
    server = Server(db_url, tmp_path / "server.log", timeout=2)  # the default worker class
    try:
        outcome = slow_read(server.port, token, rate_mb_s=3.0)
    finally:
        server.stop()
    assert outcome.seconds > 3  # longer than the worker timeout, or this proves nothing
    assert outcome.status == 200 and outcome.ended_with == "manifest"
    assert outcome.events >= EVENTS and outcome.manifest_count == outcome.events
