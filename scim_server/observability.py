"""Request ids, one log line per request, and Prometheus metrics.

The request id is ours (returned as ``X-Request-Id``); an IdP's own
correlation id (Entra ID's ``client-request-id``) is kept beside it so that a
provisioning event can be matched with the IdP's logs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

access_log = logging.getLogger("scim_server.access")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CORRELATION_HEADERS = ("client-request-id", "X-Correlation-Id", "X-Okta-Request-Id")

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "scim_requests_total",
    "HTTP requests by endpoint, method and status.",
    ["endpoint", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "scim_request_duration_seconds",
    "HTTP request latency by endpoint and method.",
    ["endpoint", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
POOL = Gauge(
    "scim_db_pool_connections",
    "Database connections by state (checked out / idle in the pool).",
    ["state"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)


# The WSGI environ keys of those headers (``request.headers.get`` without its per-call
# key folding).
_CORRELATION_KEYS = tuple("HTTP_" + name.upper().replace("-", "_") for name in CORRELATION_HEADERS)


def _environ_id(environ: dict[str, Any], key: str) -> str | None:
    value = environ.get(key)
    return value if value and _SAFE_ID.match(value) else None


# The WSGI environ key under which a request dispatched inside another (a SCIM Bulk
# operation) finds its parent's ``ParentRequest``. Not a header (those are ``HTTP_*``
# keys): no client can send it; only the code that builds the environ can.
PARENT_REQUEST = "scim_server.parent_request"
# The environ key of a request's start (perf_counter): on the request, not on ``g``,
# which a Bulk operation shares with the Bulk request.
_STARTED = "scim_server.started"


@dataclass(frozen=True)
class ParentRequest:
    """What a request dispatched inside this one keeps of it: our request id, the IdP's
    correlation id and the arrival time (its events and log line are this request's)."""

    request_id: str
    correlation_id: str | None
    received_at: datetime


def parent_request() -> ParentRequest:
    """The current request, as a request it dispatches is to name it (``PARENT_REQUEST``)."""
    app_g = g._get_current_object()
    return ParentRequest(
        app_g.get("request_id") or uuid.uuid4().hex,
        app_g.get("correlation_id"),
        app_g.get("received_at") or datetime.now(UTC),
    )


# Each (endpoint, method, status)'s counter and each (endpoint, method)'s histogram child:
# ``labels()`` checks and joins its label values on every call. Bounded as the metrics
# themselves are by their label values (a child dropped here stays in its metric, found
# again by ``labels``).
@lru_cache(maxsize=1000)
def _counter(endpoint: str, method: str, status: int) -> Any:
    return REQUESTS.labels(endpoint, method, str(status))


@lru_cache(maxsize=1000)
def _timer(endpoint: str, method: str) -> Any:
    return LATENCY.labels(endpoint, method)


def _observe(endpoint: str, method: str, status: int, elapsed: float) -> None:
    _counter(endpoint, method, status).inc()
    _timer(endpoint, method).observe(elapsed)


class _SecondCache:
    """``Formatter.formatTime``'s text for a record, kept for the second it stands for: one
    access line per request asked ``time.localtime`` and ``strftime`` for each. The
    milliseconds are added per record, as ``formatTime`` adds them."""

    def __init__(self) -> None:
        # ((second, datefmt), its text): one tuple, read and replaced whole.
        self.entry: tuple[tuple[int, str | None], str] = ((-1, None), "")

    def format_time(
        self, formatter: logging.Formatter, record: logging.LogRecord, datefmt: str | None
    ) -> str:
        if formatter.converter is not time.localtime:  # another clock: Formatter's own way
            return logging.Formatter.formatTime(formatter, record, datefmt)
        key = (int(record.created), datefmt)
        kept, text = self.entry
        if kept != key:
            text = time.strftime(datefmt or formatter.default_time_format, time.localtime(key[0]))
            self.entry = (key, text)
        if datefmt or not formatter.default_msec_format:
            return text
        return formatter.default_msec_format % (text, record.msecs)


class TextFormatter(logging.Formatter):
    """``logging.Formatter``, its time text kept per second (``_SecondCache``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seconds = _SecondCache()

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._seconds.format_time(self, record, datefmt)


class JsonFormatter(TextFormatter):
    """One JSON object per line, for log shippers (its time text kept per second too)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(app: Flask) -> None:
    """JSON lines when ``SCIM_LOG_FORMAT=json``, readable lines otherwise."""
    root = logging.getLogger("scim_server")
    if root.handlers or app.testing:
        return
    handler = logging.StreamHandler()
    if app.config.get("LOG_FORMAT") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(app.config.get("LOG_LEVEL", "INFO"))


def init_app(app: Flask) -> None:
    configure_logging(app)

    # ``g`` and ``request`` taken once per hook: each ``g.x`` or ``request.x`` looks the
    # request up again through werkzeug's LocalProxy.
    @app.before_request
    def _start() -> None:
        app_g = g._get_current_object()
        environ = request.environ
        environ[_STARTED] = time.perf_counter()
        parent = environ.get(PARENT_REQUEST)
        if parent is not None:
            # A SCIM Bulk operation: the Bulk request's ids and arrival time.
            app_g.request_id = parent.request_id
            app_g.correlation_id = parent.correlation_id
            app_g.received_at = parent.received_at
            return
        app_g.received_at = datetime.now(UTC)
        app_g.request_id = _environ_id(environ, "HTTP_X_REQUEST_ID") or uuid.uuid4().hex
        app_g.correlation_id = next(
            (cid for key in _CORRELATION_KEYS if (cid := _environ_id(environ, key))), None
        )

    @app.after_request
    def _finish(resp: Response) -> Response:
        app_g = g._get_current_object()
        request_id = app_g.get("request_id")
        if request_id:
            resp.headers["X-Request-Id"] = request_id
        req = request._get_current_object()  # type: ignore[attr-defined]
        started = req.environ.get(_STARTED)
        if started is None:
            return resp
        elapsed = time.perf_counter() - started
        rule = req.url_rule
        endpoint = rule.rule if rule else "unmatched"
        method, status = req.method, resp.status_code
        _observe(endpoint, method, status, elapsed)
        if endpoint != "/metrics" and access_log.isEnabledFor(logging.INFO):
            path = req.path
            fields = {
                "request_id": request_id,
                "correlation_id": app_g.get("correlation_id"),
                "org_id": app_g.get("org_id"),
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            # ``access_log.info`` without its ``findCaller`` (a walk up the stack to this
            # frame, named here instead): the same record, the same handlers.
            frame = sys._getframe()
            access_log.handle(
                access_log.makeRecord(
                    access_log.name,
                    logging.INFO,
                    frame.f_code.co_filename,
                    frame.f_lineno,
                    "%s %s %s %.1fms",
                    (method, path, status, elapsed * 1000),
                    None,
                    frame.f_code.co_name,
                    {"fields": fields},
                )
            )
        return resp

    @app.get("/metrics")
    def metrics() -> Response:
        from scim_server.db import db

        pool = db.engine().pool
        if hasattr(pool, "checkedout"):
            POOL.labels("checked_out").set(pool.checkedout())
            POOL.labels("idle").set(pool.checkedin())  # type: ignore[attr-defined]
        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
