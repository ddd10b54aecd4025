"""The external identity: what an IdP said about a person, in one shape for every source.

SCIM provisioning and SSO just-in-time creation both build an
``ExternalIdentity`` and hand it to the same rules, so there is one
provisioning path whatever protocol the customer's IdP speaks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mappings import sources
from mappings.text import fold

SOURCES = ("scim", "saml", "oidc")
VOCABULARY = sources.VOCABULARY
_CORE_PREFIX = fold(f"scim:{sources.CORE_USER}:")


@lru_cache(maxsize=4096)
def attribute_key(name: str) -> str:
    """Lookup key: case-insensitive, and ``scim:<core URN>:x`` is the same as ``scim:x``.

    Cached: every identity built repeats the same few dozen attribute names.
    """
    key = fold(name)
    if key.startswith(_CORE_PREFIX):
        key = "scim:" + key[len(_CORE_PREFIX) :]
    return key


def _values(value: Any) -> tuple[str, ...]:
    if type(value) is str:  # the usual case (raw values are lists of strings): no conversion
        return (value,) if value else ()
    items = value if isinstance(value, list | tuple) else (value,)
    if all(type(item) is str and item for item in items):
        return tuple(items)
    return tuple(text for text in map(sources.scalar, items) if text is not None)


class AttributeMap(Mapping[str, tuple[str, ...]]):
    """Read-only name → values, looked up case-insensitively.

    Names that differ only in case are merged (values deduplicated, first
    spelling kept): a rule never depends on how an IdP capitalised a claim.
    """

    __slots__ = ("_data", "_names")

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        names: dict[str, str] = {}
        data: dict[str, tuple[str, ...]] = {}
        for name, value in (items or {}).items():
            key = attribute_key(name)
            values = _values(value)
            if not values:
                continue
            known = data.get(key)
            if known is None:  # a name seen first (the usual case): one spelling, its values
                names[key] = name
                data[key] = values if len(values) == 1 else tuple(dict.fromkeys(values))
            else:
                data[key] = tuple(dict.fromkeys((*known, *values)))
        self._names = names
        self._data = data

    def _all(self) -> dict[str, tuple[str, ...]]:
        """Every name's values (a lazy map reads what it left for later first)."""
        return self._data

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return self._data[attribute_key(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and attribute_key(name) in self._all()

    def __iter__(self) -> Iterator[str]:
        self._all()
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AttributeMap):
            return self._all() == other._all()
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash(frozenset(self._all().items()))

    def __repr__(self) -> str:
        return f"AttributeMap({dict(self.items())!r})"


_RAW_PREFIX = "scim:"


class ScimAttributeMap(AttributeMap):
    """A SCIM User's attributes: the vocabulary read at once, the raw ``scim:`` names (every
    attribute of the document, flattened) only when one of them is first asked for.

    Rules mostly name vocabulary attributes (``department``): ``rules apply`` builds an
    identity for each of 100,000 users, and flattening each whole document was about
    half of that. The two kinds of name never meet (every raw name starts with
    ``scim:``, no vocabulary name does), so a vocabulary lookup needs nothing else.
    """

    __slots__ = ("_doc",)

    def __init__(self, doc: Mapping[str, Any]) -> None:
        super().__init__(sources.scim_common(doc))
        self._doc: Mapping[str, Any] | None = doc

    def _all(self) -> dict[str, tuple[str, ...]]:
        doc = self._doc
        if doc is not None:  # as ``AttributeMap`` of the raw names, then the vocabulary
            self._doc = None
            full = AttributeMap({**sources.scim_raw(doc), **sources.scim_common(doc)})
            self._names, self._data = full._names, full._data
        return self._data

    def __getitem__(self, name: str) -> tuple[str, ...]:
        key = attribute_key(name)
        if self._doc is not None and key.startswith(_RAW_PREFIX):
            self._all()
        return self._data[key]


@dataclass(frozen=True)
class GroupRef:
    """A group the person belongs to, by whichever handles the source gave."""

    display_name: str | None = None
    external_id: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class ExternalIdentity:
    """A person as an IdP described them: source, subject, attributes and groups.

    ``attributes`` holds the common vocabulary (``email``, ``department``, ...)
    and the raw payload under ``scim:``/``saml:``/``oidc:`` prefixes.
    """

    source: str
    subject: str | None = None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=AttributeMap)
    groups: tuple[GroupRef, ...] = ()

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if not isinstance(self.attributes, AttributeMap):
            object.__setattr__(self, "attributes", AttributeMap(self.attributes))
        object.__setattr__(self, "groups", tuple(self.groups))

    def values(self, name: str) -> tuple[str, ...]:
        """All values of an attribute (empty when absent)."""
        return self.attributes.get(name, ())

    def first(self, name: str) -> str | None:
        """The first value of an attribute, or None."""
        found = self.values(name)
        return found[0] if found else None

    @classmethod
    def from_scim(cls, user_doc: Mapping[str, Any], groups: Iterable[Any] = ()) -> ExternalIdentity:
        """From a SCIM User resource and its groups (dicts with id, displayName, externalId)."""
        if not isinstance(user_doc, Mapping):
            raise TypeError("user_doc must be a SCIM User object")
        return cls(
            source="scim",
            subject=sources.scalar(sources.scim_get(user_doc, "externalId")),
            attributes=ScimAttributeMap(user_doc),
            groups=tuple(GroupRef(*g) for g in sources.scim_groups(groups)),
        )

    @classmethod
    def from_saml(
        cls,
        name_id: str | None,
        attributes: Mapping[str, Any],
        group_attribute_names: Iterable[str] = sources.SAML_GROUP_ATTRIBUTES,
    ) -> ExternalIdentity:
        """From a SAML NameID and attribute statement (name → list of values)."""
        if not isinstance(attributes, Mapping):
            raise TypeError("attributes must be a mapping of attribute name to values")
        raw = sources.saml_raw(attributes)
        merged: dict[str, Any] = dict(raw)
        merged.update(sources.common_from_aliases(raw, "saml:", sources.SAML_ALIASES))
        groups = sources.claim_groups(raw, "saml:", group_attribute_names)
        return cls("saml", sources.scalar(name_id), merged, _dedupe(groups))

    @classmethod
    def from_oidc(
        cls, claims: Mapping[str, Any], group_claims: Iterable[str] = sources.OIDC_GROUP_CLAIMS
    ) -> ExternalIdentity:
        """From verified ID token (or userinfo) claims."""
        if not isinstance(claims, Mapping):
            raise TypeError("claims must be a mapping")
        raw = sources.oidc_raw(claims)
        merged: dict[str, Any] = dict(raw)
        merged.update(sources.oidc_common(raw, claims))
        groups = sources.claim_groups(raw, "oidc:", group_claims)
        return cls("oidc", sources.scalar(claims.get("sub")), merged, _dedupe(groups))


# The common vocabulary names one value per person (one e-mail, one department).
_SINGLE_VALUED = frozenset(attribute_key(name) for name in VOCABULARY)


def merge_identities(stored: ExternalIdentity, signed_in: ExternalIdentity) -> ExternalIdentity:
    """What the account already says (SCIM), overlaid with what a sign-in says.

    A vocabulary name both carry takes the sign-in's values (the IdP says it
    now); any other name both carry gets the values of both. Groups are the
    union: a sign-in without a groups claim takes away nothing SCIM gave. The
    source and subject are the sign-in's.
    """
    names: dict[str, str] = {}
    data: dict[str, tuple[str, ...]] = {}
    for name, values in stored.attributes.items():
        key = attribute_key(name)
        names[key], data[key] = name, values
    for name, values in signed_in.attributes.items():
        key = attribute_key(name)
        if key in data and key not in _SINGLE_VALUED:
            values = tuple(dict.fromkeys((*data[key], *values)))
        names.setdefault(key, name)
        data[key] = values
    return ExternalIdentity(
        source=signed_in.source,
        subject=signed_in.subject or stored.subject,
        attributes={names[key]: values for key, values in data.items()},
        groups=tuple(dict.fromkeys((*stored.groups, *signed_in.groups))),
    )


def _dedupe(groups: list[sources.GroupTuple]) -> tuple[GroupRef, ...]:
    seen: dict[str, GroupRef] = {}
    for display, external, ident in groups:
        seen.setdefault(fold(display or ""), GroupRef(display, external, ident))
    return tuple(seen.values())
