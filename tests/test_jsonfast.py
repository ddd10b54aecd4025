"""Stored documents and responses survive what orjson refuses (integers beyond 64 bits)."""

from __future__ import annotations

import json

import pytest

from scim_server import jsonfast
from tests.support import Scim

EXT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def test_round_trip_of_values_orjson_refuses() -> None:
    # + 1 and - 3: a float's 53 bits cannot hold them (orjson reads them as floats)
    doc = {"big": 2**70 + 1, "text": "é ✓ \u2028", "nested": [{"n": -(2**65) - 3}]}
    assert jsonfast.loads(jsonfast.dumps(doc)) == doc
    assert jsonfast.loads(jsonfast.dumps_bytes(doc)) == doc


def test_long_digit_strings_and_floats_read_as_written() -> None:
    doc = {"id": "1234567890123456789012", "f": 0.1234567890123456789, "n": 2**63 - 1}
    assert jsonfast.loads(jsonfast.dumps(doc)) == doc
    assert jsonfast.loads(jsonfast.dumps_bytes(doc)) == doc


def test_non_ascii_is_kept_as_utf8() -> None:
    assert jsonfast.dumps({"name": "Zoë"}) == '{"name":"Zoë"}'


def test_a_user_with_unicode_is_stored_and_served_unchanged(scim: Scim) -> None:
    created = scim.create_user("zoë@example.com", displayName="Zoë Ünïcode ✓", **{EXT: {}})
    resp = scim.get(f"/scim/v2/Users/{created['id']}")
    assert resp.status_code == 200
    assert resp.get_json()["displayName"] == "Zoë Ünïcode ✓"
    assert "Zoë".encode() in resp.data


def test_big_integers_stay_exact_wherever_they_are() -> None:
    # after non-ASCII text, at the very end, in a bytearray: each still read exactly
    for doc in ({"é✓": "Zoë", "n": 10**19 + 1}, [1, 2, -(10**25) - 7], 2**64 + 1):
        text = jsonfast.dumps(doc)
        assert jsonfast.loads(text) == doc
        assert jsonfast.loads(bytearray(text.encode())) == doc


def test_a_digit_run_is_long_from_nineteen_ascii_digits() -> None:
    assert not jsonfast.has_long_digit_run('{"n": 999999999999999999}')  # 18: orjson is exact
    assert jsonfast.has_long_digit_run(b'{"n": 1000000000000000000}')  # 19
    assert not jsonfast.has_long_digit_run("٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩")  # not JSON number digits


def test_many_documents_read_as_each_alone() -> None:
    """``loads_many`` (a page's stored documents): one long run anywhere reads them all
    exactly; runs never join across two documents; a bad document fails as ``loads``."""
    docs = [{"n": 2**70 + 1}, {"s": "x"}, {"f": 1.5, "m": [10**18]}]
    texts = [jsonfast.dumps_bytes(d) for d in docs]
    assert jsonfast.loads_many(texts) == docs
    assert jsonfast.loads_many(texts[1:]) == docs[1:]
    assert jsonfast.loads_many([]) == []
    # 10 digits at the end of one and 10 at the start of the next: no 19-digit run.
    assert jsonfast.loads_many([b"1234567890", b"1234567890"]) == [1234567890, 1234567890]
    assert jsonfast.loads_many(['{"é":"ü"}'.encode()]) == [{"é": "ü"}]
    # Text as psycopg hands ``jsonb`` over in a page (``db.JSONB_AS_TEXT``): the same.
    as_text = [t.decode() for t in texts]
    assert jsonfast.loads_many(as_text) == docs
    assert jsonfast.loads_many(["1234567890", "1234567890"]) == [1234567890, 1234567890]
    assert jsonfast.loads_many(['{"é":"ü"}']) == [{"é": "ü"}]
    for bad in ([b"{", b'{"a":1}'], [b'{"a":1}', b"{"]):
        with pytest.raises(json.JSONDecodeError) as raised:
            jsonfast.loads_many(bad)
        assert type(raised.value) is json.JSONDecodeError  # json's, not orjson's subclass
