"""``--scale 1m``'s pure parts: the kept database's marker, the lookups, the ratios."""

from __future__ import annotations

import math
import random
from urllib.parse import unquote

from bench import scale
from bench.report import Row

ORGS = {str(scale.SMALL): "org-1k", str(scale.LARGE): "org-1m"}


def test_a_complete_marker_of_this_schema_is_reused():
    text = scale.marker_text("0021", ORGS, 321.04, 5 * 2**30)
    marker = scale.read_marker(text, "0021")
    assert marker is not None
    assert marker["orgs"] == ORGS and marker["load_s"] == 321.0 and marker["bytes"] == 5 * 2**30


def test_no_marker_another_schema_or_data_set_means_load_again():
    text = scale.marker_text("0021", ORGS, 1.0, 1)
    assert scale.read_marker(text, "0022") is None  # a migration since
    assert scale.read_marker(None, "0021") is None  # the load never finished
    assert scale.read_marker("half loaded", "0021") is None
    assert scale.read_marker('["0021"]', "0021") is None
    older = text.replace(f'"dataset": {scale.DATASET_VERSION}', '"dataset": 0')
    assert scale.read_marker(older, "0021") is None
    other_sizes = scale.marker_text("0021", {"1000": "a"}, 1.0, 1)
    assert scale.read_marker(other_sizes, "0021") is None


def _filters(form: str, sample: scale.Sample, n: int) -> list[str]:
    make = scale.lookup_path(form, sample)
    rng = random.Random(1)
    return [unquote(make(rng).split("filter=", 1)[1]) for _ in range(n)]


def test_lookups_draw_sampled_users_and_a_share_of_misses():
    sample = scale.Sample(["ada@example.com", "bo@example.com"], ["ada@w.com", "bo@w.com"])
    names = _filters('userName eq "..."', sample, 2_000)
    hits = [f for f in names if f in {f'userName eq "{n}"' for n in sample.user_names}]
    misses = [f for f in names if "missing.example.org" in f]
    assert len(hits) + len(misses) == len(names)
    assert 0.05 < len(misses) / len(names) < 0.15  # MISS_SHARE, 0.1
    assert {f'userName eq "{n}"' for n in sample.user_names} == set(hits)


def test_email_forms_look_up_the_work_address():
    sample = scale.Sample(["ada@example.com"], ["ada@w.com"])
    for form, template in scale.FORMS.items():
        if form.startswith("userName"):
            continue
        found = set(_filters(form, sample, 200))
        assert template.format(v="ada@w.com") in found
        assert all("ada@example.com" not in f for f in found)


def _row(c: int, size: int, p50: float, p99: float) -> Row:
    return Row("postgresql", 'userName eq "..."', c, size, 100, 0, 10.0, p50, p99, 0.1)


def test_ratio_is_p99_at_1m_over_p99_at_1k_per_concurrency():
    rows = [
        _row(1, scale.SMALL, 2.0, 4.0),
        _row(1, scale.LARGE, 2.5, 6.0),
        _row(8, scale.SMALL, 10.0, 20.0),
        _row(8, scale.LARGE, 12.0, 45.0),
    ]
    got = {r["concurrency"]: r for r in scale.ratios(rows)}
    assert got[1]["p99_ratio"] == 1.5 and got[1]["p50_ratio"] == 1.25 and got[1]["met"]
    assert got[8]["p99_ratio"] == 2.25 and not got[8]["met"]


def test_a_run_with_no_answers_is_not_met():
    rows = [_row(1, scale.SMALL, math.nan, math.nan), _row(1, scale.LARGE, 2.0, 3.0)]
    (only,) = scale.ratios(rows)
    assert not only["met"]
