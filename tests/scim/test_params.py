"""List query parameters (``scim.params``): the plain forms read without marshmallow give
what marshmallow gives, and every bad value the same SCIM error (RFC 7644 §3.4.2, §3.12)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scim_server.scim import params
from tests.scim import dataset
from tests.scim.dataset import Data
from tests.support import Scim

data_connection = dataset.data_connection
data_app = dataset.data_app
data = dataset.data
connection = dataset.connection
app = dataset.app
ds = dataset.ds

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PREFIX = "Invalid query parameter: "
NOT_INT = "Not a valid integer."
ORDER = "sortOrder: must be ascending or descending"
SORT_BY = "sortBy: Length must be between 1 and 512."

# Each bad query string and the detail marshmallow words for it (as before the plain path).
BAD: list[tuple[dict[str, str], str]] = [
    ({"startIndex": "abc"}, f"startIndex: {NOT_INT}"),
    ({"count": "abc"}, f"count: {NOT_INT}"),
    ({"startIndex": "1.5"}, f"startIndex: {NOT_INT}"),
    ({"count": ""}, f"count: {NOT_INT}"),
    ({"startIndex": ""}, f"startIndex: {NOT_INT}"),
    ({"count": "1e3"}, f"count: {NOT_INT}"),
    ({"count": "0x10"}, f"count: {NOT_INT}"),
    ({"count": "true"}, f"count: {NOT_INT}"),
    ({"count": "9" * 5000}, f"count: {NOT_INT}"),  # more digits than int() reads
    ({"sortOrder": "sideways"}, ORDER),
    ({"sortOrder": ""}, ORDER),
    ({"sortBy": ""}, SORT_BY),
    ({"sortBy": "a" * 513}, SORT_BY),
    ({"filter": "x" * 8193}, "filter: Longer than maximum length 8192."),
    ({"startIndex": "x", "count": "y"}, f"startIndex: {NOT_INT}. count: {NOT_INT}"),
    (
        {"startIndex": "x", "sortOrder": "up", "sortBy": ""},
        f"{SORT_BY}. {ORDER}. startIndex: {NOT_INT}",
    ),
]


@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
@pytest.mark.parametrize(("query", "detail"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_every_bad_parameter_is_the_same_scim_error(
    ds: Scim, endpoint: str, query: dict[str, str], detail: str
) -> None:
    """A bad value is a 400 ``invalidValue`` worded as marshmallow words it."""
    resp = ds.get(f"/scim/v2/{endpoint}", query_string=query)
    assert resp.status_code == 400
    assert resp.mimetype == "application/scim+json"
    assert resp.get_json() == {
        "schemas": [ERROR],
        "status": "400",
        "scimType": "invalidValue",
        "detail": PREFIX + detail,
    }


# Forms every client sends: read without marshmallow.
PLAIN: list[dict[str, str]] = [
    {},
    {"filter": 'userName eq "alice@example.com"'},
    {"filter": 'displayName eq "Admins"', "count": "1"},
    {"startIndex": "1", "count": "100"},
    {"startIndex": "3", "count": "2", "sortBy": "userName", "sortOrder": "Descending"},
    {"startIndex": "0", "count": "-5"},
    {"count": "0"},
    {"attributes": "userName,emails", "excludedAttributes": "groups"},
    {"filter": "", "sortOrder": "ASCENDING"},
]


@pytest.mark.parametrize("query", PLAIN)
def test_plain_forms_are_read_without_marshmallow(query: dict[str, str]) -> None:
    """The common forms take the plain path, and load to what marshmallow loads."""
    plain = params._plain_load(query)
    assert plain is not None
    assert plain == params._QUERY_PARAMS.load(query)


# Values to mix: plain ones, and ones only marshmallow decides (int() reads " 5", "1_000",
# "٣", "+7"; sortOrder is lower-cased first).
_VALUES = st.one_of(
    st.sampled_from(
        [
            *("1", "0", "-1", "007", "+7", " 5", "5 ", "1_000", "٣", "1.0", "", "x", "9" * 30),
            *("ascending", "Descending", "DESCENDING ", "up", "userName", "a" * 513),
        ]
    ),
    st.text(max_size=12),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)
_QUERIES = st.dictionaries(st.sampled_from(sorted(params._QUERY_FIELDS)), _VALUES, max_size=5)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_QUERIES)
def test_the_plain_path_loads_what_marshmallow_loads(query: dict[str, str]) -> None:
    """Where the plain path reads a query string, marshmallow reads it the same; where it
    does not, marshmallow decides (a value or the error)."""
    plain = params._plain_load(query)
    if plain is not None:
        assert plain == params._QUERY_PARAMS.load(query)


@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
@pytest.mark.parametrize("query", [*PLAIN[1:], {"count": " 2"}, {"startIndex": "1_0"}])
def test_pages_are_the_same_without_the_plain_path(
    ds: Scim, data: Data, monkeypatch: pytest.MonkeyPatch, endpoint: str, query: dict[str, Any]
) -> None:
    """A list page is byte for byte the page marshmallow's reading of its query gives."""
    query = {k: data.fill(v) for k, v in query.items()}
    plain = ds.get(f"/scim/v2/{endpoint}", query_string=query)
    monkeypatch.setattr(params, "_plain_load", lambda _single: None)
    loaded = ds.get(f"/scim/v2/{endpoint}", query_string=query)
    assert plain.status_code == loaded.status_code
    assert plain.get_data() == loaded.get_data()
