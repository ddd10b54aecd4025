"""The index rows a change writes: flattening only the attributes that differ
(``indexing.changed_part``) gives the statements flattening both documents whole gave."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scim_server.scim.schema import ENTERPRISE_SCHEMA
from scim_server.services.indexing import (
    NOT_INDEXED,
    _text,
    changed_part,
    differences,
    index_rows,
)
from scim_server.text import fold

ORG, RID = "org-1", "user-1"


def whole(stored: dict[str, Any], doc: dict[str, Any]) -> Any:
    return differences(ORG, RID, index_rows(ORG, RID, stored), index_rows(ORG, RID, doc))


def by_part(stored: dict[str, Any], doc: dict[str, Any]) -> Any:
    parts = changed_part(stored, doc)
    if parts is None:
        return whole(stored, doc)
    was, now = parts
    return differences(ORG, RID, index_rows(ORG, RID, was), index_rows(ORG, RID, now))


def normal(plan: Any) -> Any:
    """The statements' parameters, order aside (the full path's order is a set's)."""
    return [sorted(map(repr, rows)) for rows in plan]


SCALAR = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([1.0, 2.5, "1", "x"])
NAMES = st.sampled_from(["title", "Title", "nickName", "name", "emails", "a.b", "locale"])
SUBS = st.sampled_from(["value", "type", "primary", "givenName", "display"])
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SUBS, inner, max_size=3),
    max_leaves=6,
)
DOC = st.dictionaries(
    NAMES
    | st.sampled_from(
        [ENTERPRISE_SCHEMA, "urn:x:ext", "urn:x:ext:title", "URN:X:EXT", "name.x:y", "urn:Y"]
    ),
    VALUE,
    max_size=5,
)


@settings(max_examples=400, deadline=None)
@given(stored=DOC, doc=DOC)
def test_flattening_what_differs_writes_what_flattening_all_wrote(stored, doc):
    assert normal(by_part(stored, doc)) == normal(whole(stored, doc))


@settings(max_examples=200, deadline=None)
@given(stored=DOC, name=NAMES, value=VALUE)
def test_a_one_attribute_change_flattens_that_attribute(stored, name, value):
    doc = {**stored, name: value}
    assert normal(by_part(stored, doc)) == normal(whole(stored, doc))


def test_true_is_not_one_to_the_index():
    """``True == 1`` in Python, but the index holds "true" and "1": a change."""
    stored = {"x": [{"value": 1}], "title": "A"}
    doc = {"x": [{"value": True}], "title": "A"}
    assert changed_part(stored, doc) == ({"x": [{"value": 1}]}, {"x": [{"value": True}]})
    gone, changed, added = by_part(stored, doc)
    assert (gone, added) == ([], [])
    assert [row["v"] for row in changed] == ["true"]


def test_names_that_could_share_rows_flatten_everything():
    assert changed_part({"title": "a", "Title": "b"}, {"title": "a"}) is None
    assert changed_part({"a.b": 1}, {"a.b": 2}) is None
    assert changed_part({"urn:x:ext:title": "a"}, {"urn:x:ext:title": "b"}) is None
    assert changed_part({"urn:x": {"a:b": 1}, "urn:x:a": {"b": 2}}, {}) is None
    assert changed_part({"name": {"x:y": 1}}, {"name.x:y": {"z": 1}}) is None
    enterprise = {ENTERPRISE_SCHEMA: {"department": "R&D"}, "title": "a"}
    moved = {ENTERPRISE_SCHEMA: {"department": "Sales"}, "title": "a"}
    assert changed_part(enterprise, moved) == (
        {ENTERPRISE_SCHEMA: {"department": "R&D"}},
        {ENTERPRISE_SCHEMA: {"department": "Sales"}},
    )
    assert changed_part({"title": "a", "nickName": "n"}, {"title": "b", "nickName": "n"}) == (
        {"title": "a"},
        {"title": "b"},
    )


def _reference_rows(org_id: str, resource_id: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """``index_rows`` as it was written first (a closure per value): the rows, in order,
    that the faster loop must give."""
    rows: list[dict[str, Any]] = []

    def add(attr: str, pos: int, value: Any) -> None:
        text = _text(value)
        if text is not None:
            rows.append(
                {
                    "org_id": org_id,
                    "resource_id": resource_id,
                    "attr": attr,
                    "pos": pos,
                    "value": text,
                    "value_key": fold(text),
                }
            )

    def walk(prefix: str, name: str, value: Any) -> None:
        key = f"{prefix}{name}".lower()
        items = value if isinstance(value, list) else [value]
        for pos, item in enumerate(items):
            if isinstance(item, dict):
                for sub, sub_value in item.items():
                    if not isinstance(sub_value, dict | list):
                        add(f"{key}.{sub.lower()}", pos, sub_value)
            else:
                add(key, pos, item)

    for name, value in doc.items():
        if ":" in name and isinstance(value, dict):
            for ext_name, ext_value in value.items():
                walk(f"{name}:", ext_name, ext_value)
        elif name.lower() not in NOT_INDEXED:
            walk("", name, value)
    return rows


LEAF = SCALAR | st.sampled_from(["", "Zoë", "ÉCOLE", "ß", "x" * 512, "x" * 513, 3.0, -0.5])
ANY_DOC = st.dictionaries(
    NAMES | st.sampled_from([ENTERPRISE_SCHEMA, "urn:x:ext", "password", "Members", "active"]),
    st.recursive(
        LEAF,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SUBS, inner, max_size=3),
        max_leaves=8,
    ),
    max_size=6,
)


@settings(max_examples=400, deadline=None)
@given(doc=ANY_DOC)
def test_index_rows_are_the_reference_rows_in_order(doc):
    assert index_rows(ORG, RID, doc) == _reference_rows(ORG, RID, doc)
