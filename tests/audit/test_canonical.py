"""The chain's canonical form is byte for byte the ``json.dumps`` form it always was.

``chain.canonical`` writes it with orjson when that gives the same bytes; an event hashed
before (by ``json``) must verify after, and one hashed now by any older verifier.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scim_server.audit import chain
from scim_server.audit.recorder import Recorded


def reference(event: Any) -> bytes:
    """The canonical form as it was first written (the stored hashes' definition)."""
    doc = {}
    for name in chain.FIELDS:
        value = getattr(event, name)
        if isinstance(value, datetime):
            value = value.isoformat(timespec="microseconds")
        doc[name] = value
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


EVENT = Recorded(
    org_id="org-1",
    occurred_at=datetime(2026, 12, 6, 3, 4, 5, 678901, tzinfo=UTC),
    received_at=None,
    actor_type="token",
    actor_id="tok_1",
    actor_name="Entra ID (provisioning) ç",
    source_ip="10.0.0.1",
    user_agent="Okta SCIM Client 1.0.0",
    request_id="req-1",
    correlation_id=None,
    action="user.patch",
    resource_type="User",
    resource_id="u-1",
    external_id="00u1",
    user_name="zoë@example.org",
    outcome="success",
    status=200,
    scim_type=None,
    detail=None,
    changes={"title": {"before": "Engineer", "after": "Manager"}},
    explanation=None,
    seq=7,
    prev_hash="ab" * 32,
)

# Strings with every escape json writes (control characters, quotes, backslashes), non-ASCII
# and astral characters, U+2028; keys sorted across the BMP and beyond.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(TEXT, inner, max_size=4)
        | st.dictionaries(st.integers(-5, 5), inner, max_size=2)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(changes=JSON, explanation=JSON, detail=st.none() | TEXT)
def test_canonical_is_the_json_form_of_any_event(changes, explanation, detail):
    event = replace(EVENT, changes=changes, explanation=explanation, detail=detail)
    assert chain.canonical(event) == reference(event)


@pytest.mark.parametrize(
    "changes",
    [
        {"score": 1e-05},  # orjson writes 0.00001
        {"score": float("nan")},  # orjson writes null
        {"big": 2**64},  # beyond orjson's integers
        {1: "a key not a string"},
        ("a", "tuple"),
        {"title": {"before": 'a\x00\x1f"\\\u2028b', "after": "\U0001f600"}},
    ],
)
def test_canonical_of_what_orjson_writes_otherwise(changes):
    event = replace(EVENT, changes=changes)
    assert chain.canonical(event) == reference(event)


def test_canonical_refuses_what_json_refused():
    """A lone surrogate or an object json cannot write: the same error as before."""
    with pytest.raises(UnicodeEncodeError):
        chain.canonical(replace(EVENT, detail="\ud800"))
    with pytest.raises(TypeError):
        chain.canonical(replace(EVENT, changes={"when": datetime(2026, 1, 1, tzinfo=UTC)}))


def reference_hash(event: Any, prev_hash: str, seq: int) -> str:
    return hashlib.sha256(reference(replace(event, prev_hash=prev_hash, seq=seq))).hexdigest()


@settings(max_examples=300, deadline=None)
@given(
    changes=JSON,
    explanation=JSON,
    detail=st.none() | TEXT,
    received=st.none() | st.datetimes(timezones=st.just(UTC)),
    seq=st.integers(min_value=1, max_value=2**40),
)
def test_a_hash_made_ready_before_the_lock_is_the_events_hash(
    changes, explanation, detail, received, seq
):
    """``chain.unchained`` (serialised before the head is locked) then ``hash(prev, seq)``
    gives the hash of the event at that place, or None when orjson's form is not json's
    (the recorder then hashes it as ever)."""
    event = replace(
        EVENT, changes=changes, explanation=explanation, detail=detail, received_at=received
    )
    prev_hash = hashlib.sha256(str(seq).encode()).hexdigest()
    ready = chain.unchained(event)
    made = ready.hash(prev_hash, seq) if ready is not None else None
    if made is None:
        assert not _plain_json(event)
    else:
        assert made == reference_hash(event, prev_hash, seq)


def _plain_json(event: Any) -> bool:
    """Whether the event's canonical form is orjson's (no float, no big integer...)."""
    try:
        return chain._orjson_same([event.changes, event.explanation, event.detail]) and bool(
            orjson.dumps([event.changes, event.explanation, event.detail])
        )
    except TypeError:
        return False


def test_a_hash_made_ready_refuses_an_unusual_place():
    """A previous hash that is not a plain hex digest, or a seq not an int: None (the
    recorder then hashes the whole event)."""
    assert chain.unchained(EVENT).hash("not plain", 3) is None
    assert chain.unchained(EVENT).hash("ab" * 32, True) is None
    assert chain.unchained(EVENT).hash("ab" * 32, 3) == reference_hash(EVENT, "ab" * 32, 3)


def test_a_hash_made_ready_of_a_stray_datetime_is_left_to_canonical():
    """A datetime outside the two timestamps: not orjson's form (``canonical`` decides)."""
    assert chain.unchained(replace(EVENT, detail=datetime(2026, 1, 1, tzinfo=UTC))) is None


def test_head_signature_is_the_hmac_of_its_parts():
    key = b"k" * 32
    expected = hmac.new(key, b"head|org-1|7|" + b"ab" * 32 + b"|0|" + b"cd" * 32, "sha256")
    got = chain.head_signature(key, "org-1", 7, "ab" * 32, 0, "cd" * 32)
    assert got == expected.hexdigest()
