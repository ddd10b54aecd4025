"""Figures from samples, the performance targets, the printed table and the JSON file."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from bench.labels import ADD_BIG, ADD_SMALL, BASELINE, DEEP_LIST, FILTER_USERNAME, GET_BY_ID
from bench.loadgen import Outcome


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported value was observed)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Row:
    """One operation at one concurrency (or one organization size, for growth)."""

    backend: str
    operation: str
    concurrency: int
    org_size: int
    requests: int
    errors: int
    rps: float  # every request of the run (both halves of an add/remove pair) per second
    p50_ms: float
    p99_ms: float
    client_cpu: float  # cores used by the load generator during the run
    vs_baseline: float | None = None  # rps / baseline rps at the same concurrency
    note: str = ""


def rows_from(backend: str, outcome: Outcome, concurrency: int, org_size: int) -> list[Row]:
    """One row per request label in the run."""
    total = len(outcome.samples)
    rps = total / outcome.elapsed_s if outcome.elapsed_s > 0 else 0.0
    labels = dict.fromkeys(s.label for s in outcome.samples)
    rows = []
    for label in labels:
        mine = [s for s in outcome.samples if s.label == label]
        ok = sorted(s.seconds * 1000 for s in mine if s.ok)
        rows.append(
            Row(
                backend=backend,
                operation=label,
                concurrency=concurrency,
                org_size=org_size,
                requests=len(mine),
                errors=sum(not s.ok for s in mine),
                rps=rps,
                p50_ms=percentile(ok, 0.50),
                p99_ms=percentile(ok, 0.99),
                client_cpu=round(outcome.client_cpu, 2),
            )
        )
    return rows


def skipped_row(backend: str, operation: str, c: int, org_size: int, why: str) -> Row:
    nan = math.nan
    return Row(backend, operation, c, org_size, 0, 0, 0.0, nan, nan, 0.0, None, f"skipped: {why}")


def add_baseline_ratios(rows: list[Row]) -> None:
    base = {r.concurrency: r.rps for r in rows if r.operation == BASELINE}
    for r in rows:
        if r.concurrency in base and base[r.concurrency] > 0 and not r.note:
            r.vs_baseline = r.rps / base[r.concurrency]


# -- targets -----------------------------------------------------------------------


@dataclass
class Target:
    backend: str
    name: str
    met: bool
    evidence: str


def _find(rows: Iterable[Row], operation: str, concurrency: int, org_size: int) -> Row | None:
    return next(
        (
            r
            for r in rows
            if r.operation == operation
            and r.concurrency == concurrency
            and r.org_size == org_size
            and r.requests > r.errors
        ),
        None,
    )


def check_targets(
    backend: str, rows: list[Row], growth: list[Row], concurrencies: Iterable[int], largest: int
) -> list[Target]:
    """The four targets; each throughput target must hold at every concurrency."""
    out: list[Target] = []
    concurrencies = list(concurrencies)

    def ratio_target(name: str, num: str, den: str, floor: float) -> None:
        parts, met = [], True
        for c in concurrencies:
            a, b = _find(rows, num, c, largest), _find(rows, den, c, largest)
            if a is None or b is None or b.rps == 0:
                parts.append(f"c={c}: no data")
                met = False
                continue
            ratio = a.rps / b.rps
            met &= ratio >= floor
            parts.append(f"c={c}: {a.rps:.0f}/{b.rps:.0f} rps = {ratio:.2f}")
        out.append(Target(backend, name, met, "; ".join(parts)))

    ratio_target("GET by id >= 0.70x baseline throughput", GET_BY_ID, BASELINE, 0.70)

    small = min(r.org_size for r in growth) if growth else 0
    lo = _find(growth, FILTER_USERNAME, 1, small)
    hi = _find(growth, FILTER_USERNAME, 1, largest)
    if lo and hi:
        out.append(
            Target(
                backend,
                f"userName eq p99 at {largest:,} <= 2x p99 at {small:,}",
                hi.p99_ms <= 2 * lo.p99_ms,
                f"p99 {hi.p99_ms:.1f} ms vs {lo.p99_ms:.1f} ms = {hi.p99_ms / lo.p99_ms:.2f}x "
                f"(p50 {hi.p50_ms:.1f} vs {lo.p50_ms:.1f} ms)",
            )
        )
    ratio_target("deep list page >= 0.5x GET-by-id throughput", DEEP_LIST, GET_BY_ID, 0.5)

    big, ten = _find(rows, ADD_BIG, 1, largest), _find(rows, ADD_SMALL, 1, largest)
    if big and ten:
        out.append(
            Target(
                backend,
                "add member to the big group: p99 <= 1.5x the 10-member group's (c=1)",
                big.p99_ms <= 1.5 * ten.p99_ms,
                f"p99 {big.p99_ms:.1f} ms vs {ten.p99_ms:.1f} ms = {big.p99_ms / ten.p99_ms:.2f}x "
                f"(p50 {big.p50_ms:.1f} vs {ten.p50_ms:.1f} ms)",
            )
        )
        out.append(
            Target(
                backend,
                "add member to the big group: p99 < 20 ms (c=1)",
                big.p99_ms < 20,
                f"p99 {big.p99_ms:.1f} ms (p50 {big.p50_ms:.1f} ms, {big.requests} requests)",
            )
        )
    return out


# -- output ------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def table(rows: list[Row], show_backend: bool = False) -> str:
    """A Markdown table (pasted as is into BENCHMARKS.md); ``show_backend`` adds a first column."""
    lines = [
        "| operation | c | requests | errors | req/s | p50 ms | p99 ms | vs baseline "
        "| client CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    if show_backend:
        lines = ["| server " + lines[0], "| --- " + lines[1]]
    for r in rows:
        ratio = "" if r.vs_baseline is None else f"{r.vs_baseline:.2f}"
        first = f"| {r.backend} " if show_backend else ""
        if r.note:
            lines.append(f"{first}| {r.operation} | {r.concurrency} | {r.note} |||||||")
            continue
        lines.append(
            f"{first}| {r.operation} | {r.concurrency} | {r.requests} | {r.errors} | {r.rps:.0f} "
            f"| {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | {ratio} | {r.client_cpu:.2f} |"
        )
    return "\n".join(lines)


def growth_table(rows: list[Row]) -> str:
    lines = [
        "| operation | users in org | requests | errors | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.operation} | {r.org_size:,} | {r.requests} | {r.errors} "
            f"| {_ms(r.p50_ms)} | {_ms(r.p99_ms)} |"
        )
    return "\n".join(lines)


def targets_table(targets: list[Target]) -> str:
    lines = ["| target | result | evidence |", "| --- | --- | --- |"]
    for t in targets:
        lines.append(f"| {t.name} | {'met' if t.met else 'NOT MET'} | {t.evidence} |")
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses as objects, NaN (no successful sample) as null."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(doc), indent=2, allow_nan=False) + "\n")
