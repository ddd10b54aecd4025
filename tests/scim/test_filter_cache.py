"""Filters translated once per shape (``scim.filter_cache``): the same answers as the full path."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scim_server.scim import filter_cache, listing
from scim_server.scim.schema import GROUP, USER
from tests.scim import dataset
from tests.scim.dataset import Data
from tests.scim.test_filters import GROUP_FILTERS, USER_FILTERS, list_ids
from tests.support import Scim

data_connection = dataset.data_connection
data_app = dataset.data_app
data = dataset.data
connection = dataset.connection
app = dataset.app
ds = dataset.ds

MARK = re.compile('"\ue000[0-9]+\ue001"')


def _warm(scim: Scim, endpoint: str, flt: str) -> None:
    """Send ``flt``'s shape with other literals first (its answer, or error, does not matter)."""
    shaped = filter_cache.shape_of(flt)
    assert shaped is not None, flt
    other = MARK.sub('"zz-warm"', shaped[0])
    scim.get(f"/scim/v2/{endpoint}", query_string={"filter": other, "count": 100})


@pytest.fixture
def shapes(app: Flask) -> filter_cache.FilterCache:
    """The app's shapes, empty for this test."""
    fresh = filter_cache.FilterCache()
    app.extensions[listing.FILTERS_EXTENSION] = fresh
    return fresh


FILTERS = [("Users", f, e) for f, e in USER_FILTERS] + [("Groups", f, e) for f, e in GROUP_FILTERS]


@pytest.mark.parametrize(
    ("resource", "flt", "expected"), FILTERS, ids=[f"{r}: {f}" for r, f, _ in FILTERS]
)
def test_a_filter_finds_the_same_after_its_shape_was_translated(
    ds: Scim, data: Data, shapes: Any, resource: str, flt: str, expected: set[str]
) -> None:
    """Every user and group filter of test_filters, its shape first translated for other
    literals."""
    flt = data.fill(flt)
    _warm(ds, resource, flt)
    assert list_ids(ds, resource, flt, data) == expected


@pytest.mark.parametrize(
    "flt",
    [
        'userName eq "alice@example.com"',
        'emails[type eq "work"].value eq "dave@example.com"',
        'emails[value eq "dave@example.com"]',
        'externalId eq "ext-1" or userName eq "bob"',
        'name.familyName eq "Smith" and not (title eq "Boss")',
    ],
)
def test_lookup_shapes_are_translated_once(ds: Scim, shapes: Any, monkeypatch, flt: str) -> None:
    """What IdPs send is cached: the second filter of a shape is not parsed or translated."""
    ds.get("/scim/v2/Users", query_string={"filter": flt})
    assert len(shapes) == 1
    (template,) = shapes._shapes.values()
    assert template is not None

    def refuse(*_a: Any, **_k: Any) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(filter_cache, "parse_filter", refuse)
    monkeypatch.setattr(listing, "parse_filter", refuse)
    other = MARK.sub('"someone-else"', filter_cache.shape_of(flt)[0])  # type: ignore[index]
    resp = ds.get("/scim/v2/Users", query_string={"filter": other})
    assert resp.status_code == 200 and resp.get_json()["totalResults"] == 0


@pytest.mark.parametrize(
    ("rt", "flt"),
    [
        (USER, 'active eq "true"'),  # a boolean compared to a string: its text decides
        (USER, 'meta.lastModified gt "2020-01-01T00:00:00Z"'),  # parsed as a dateTime
        (USER, 'meta.resourceType eq "User"'),  # decided in Python, not in SQL
        (USER, 'userName sw "al"'),  # LIKE patterns escape the literal as they are built
        (USER, 'urn:ietf:params:scim:schemas:extension:product:2.0:User:status eq "active"'),
        (USER, 'groups.type eq "direct"'),
        (GROUP, 'members.display eq "Alice"'),
        (USER, 'nosuch eq "x"'),  # an error: the full path raises it
    ],
)
def test_shapes_that_read_their_literals_are_not_cached(rt: Any, flt: str) -> None:
    """A translation that depends on a literal's text is never made once for all."""
    shaped = filter_cache.shape_of(flt)
    assert shaped is not None
    assert filter_cache._template(rt, shaped[0]) is None


def test_shapes_keep_everything_but_string_literals() -> None:
    """Numbers, true/false/null, names and spacing are the shape; strings are its literals."""
    shape, literals = filter_cache.shape_of('userName eq "a\\"b" and x.y eq 5') or ("", [])
    assert literals == ['a"b']
    assert shape == 'userName eq "\ue0000\ue001" and x.y eq 5'
    assert filter_cache.shape_of('userName eq "unterminated') is None
    assert filter_cache.shape_of('userName eq "' + "x" * 9000 + '"') is None


def test_the_cache_keeps_the_most_recent_shapes() -> None:
    """At most ``size`` shapes; the least recently used goes first."""
    cache = filter_cache.FilterCache(size=2)
    for attr in ("userName", "externalId", "displayName"):
        assert cache.lookup(USER, f'{attr} eq "x"') is not None
    assert len(cache) == 2
    assert (USER.name, 'userName eq "\ue0000\ue001"') not in cache._shapes


# -- a known shape found without the lexer (``_quick_shape``) ----------------------------

QUICK = [
    'userName eq "alice@example.com"',
    'userName eq "a\\"b" and x.y eq 5',
    'userName eq "al\\u0069ce@example.com"',  # an escape: decoded as the lexer decodes it
    'displayName eq "say \\"hi\\" \\\\ \\/ \\n"',
    'emails[type eq "work"].value eq "dave@example.com"',
    'title eq "tab\there"',  # a raw control character, tolerated by the lexer
    'userName eq "é ü 中"',
    'userName eq ""',
    'userName eq "a" or userName eq "b" or userName eq "c"',
    'userName eq "\ue0000\ue001"',  # a literal that looks like a mark
    "active eq true and userName pr",
]


@pytest.mark.parametrize("flt", QUICK)
def test_a_known_shape_is_cut_as_the_lexer_cuts_it(flt: str) -> None:
    """``_quick_shape`` gives the shape and literal values ``shape_of`` gives (lexed)."""
    assert filter_cache._quick_shape(flt) == filter_cache.shape_of(flt)


@pytest.mark.parametrize(
    "flt",
    [
        'userName eq "bad \\q escape"',
        'userName eq "unterminated',
        'userName eq "a" "',
        'userName eq "\\u12"',
        'userName eq "a"]',  # cut, but its shape never lexes: it is never known
    ],
)
def test_a_text_the_lexer_refuses_is_never_a_known_shape(flt: str) -> None:
    """Where ``_quick_shape`` cuts a text the lexer refuses, the shape it gives does not lex
    either, so no cache holds it and the full path gives the error."""
    assert filter_cache.shape_of(flt) is None
    quick = filter_cache._quick_shape(flt)
    assert quick is None or filter_cache.shape_of(quick[0]) is None


_FILTER_CHARS = st.sampled_from(
    ['"', "\\", "u", "0", "a", " ", "eq", "userName", "[", "]", "(", ")", "n", "/", "\t", "é"]
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_FILTER_CHARS, max_size=24).map("".join))
def test_quick_shape_agrees_with_the_lexer(text: str) -> None:
    """For any text: where the lexer cuts it, ``_quick_shape`` cuts it the same; where it
    does not, ``_quick_shape``'s shape (if any) does not lex, so it is never in a cache."""
    lexed = filter_cache.shape_of(text)
    quick = filter_cache._quick_shape(text)
    if lexed is not None:
        assert quick == lexed
    elif quick is not None:
        assert filter_cache.shape_of(quick[0]) is None


def test_a_known_shape_is_not_lexed_again(ds: Scim, data: Data, shapes: Any, monkeypatch) -> None:
    """The second ``userName eq`` is found without the lexer, and finds its user."""
    ds.get("/scim/v2/Users", query_string={"filter": 'userName eq "nobody"'})

    def refuse(*_a: Any, **_k: Any) -> None:
        raise AssertionError("lexed again")

    monkeypatch.setattr(filter_cache, "lex", refuse)
    flt = data.fill('userName eq "alice@example.com"')
    assert list_ids(ds, "Users", flt, data) == {"alice"}


@pytest.mark.parametrize(
    ("warm", "bad"),
    [
        ('userName eq "x"', 'userName eq "bad \\q escape"'),
        ('userName eq "x"', 'userName eq "unterminated'),
        ('userName eq "x"', 'userName eq "a"]'),
        # Fewer characters than the parameter's limit, more bytes than the parser's.
        ('userName eq "x"', 'userName eq "' + "é" * 4100 + '"'),
    ],
)
def test_a_bad_filter_of_a_known_shape_is_the_same_error(
    ds: Scim, shapes: Any, warm: str, bad: str
) -> None:
    """A filter the lexer refuses gives the same 400 ``invalidFilter``, its shape known or not."""
    cold = ds.get("/scim/v2/Users", query_string={"filter": bad})
    ds.get("/scim/v2/Users", query_string={"filter": warm})
    assert len(shapes) == 1
    hot = ds.get("/scim/v2/Users", query_string={"filter": bad})
    assert cold.status_code == hot.status_code == 400
    assert cold.get_json()["scimType"] == "invalidFilter"
    assert hot.get_data() == cold.get_data()
