"""Schema-driven validation of incoming resources and projection of outgoing ones.

Incoming bodies are checked against the RFC 7643 schema documents and turned
into a *canonical document*: attribute names spelled as the schema spells them,
extension attributes under their schema URN, read-only attributes dropped
(RFC 7643 §2.2: "SHALL be ignored"), nulls and empty lists removed. The same
document form is what PATCH operates on and what is stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scim_server.errors import InvalidSyntaxError, InvalidValueError, MutabilityError
from scim_server.scim.filter_ast import PathError
from scim_server.scim.filter_parser import parse_path
from scim_server.scim.schema import GROUP, USER, Attribute, ResourceType
from scim_server.services.groups import GroupEdit
from scim_server.services.members import MemberChange
from scim_server.text import exact, fold

MAX_STRING = 512
MAX_BINARY = 64 * 1024
# A cap on the values of one multi-valued attribute (emails, phoneNumbers,
# addresses...): no person has more, and it keeps hostile arrays cheap to refuse.
MAX_VALUES = 100
# Group members are not capped here: a group of any real size must be creatable in
# one POST or PUT. They are bounded per request by SCIM_MAX_INLINE_MEMBERS (checked
# in the views), the body size limit and the Bulk limits.
UNCAPPED = frozenset({"members"})
# A group member is named by its id (RFC 7643 §4.2 "value"): POST, PUT and PATCH say so alike.
MEMBER_VALUE_NEEDED = "Each member needs a string 'value' (the member's id)."

Doc = dict[str, Any]


def _type_error(path: str, expected: str) -> InvalidValueError:
    return InvalidValueError(f"Attribute '{path}' must be {expected}.")


def parse_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    # Entra ID (legacy, without aadOptscim062020) sends booleans as strings.
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _type_error(path, "a boolean")


def _check_text(value: Any, path: str, limit: int) -> str:
    if not isinstance(value, str):
        raise _type_error(path, "a string")
    if "\x00" in value:
        raise InvalidValueError(f"Attribute '{path}' contains a NUL character.")
    if len(value) > limit:
        raise InvalidValueError(f"Attribute '{path}' is longer than {limit} characters.")
    return value


def coerce_simple(attr: Attribute, value: Any, path: str) -> Any:
    """Check one single (non-list) value of a simple type; return it normalised."""
    kind = attr.type
    if kind == "boolean":
        return parse_bool(value, path)
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(path, "an integer")
        return value
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(path, "a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise _type_error(path, "a finite number")
        return value
    if kind == "dateTime":
        text = _check_text(value, path, 64)
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise _type_error(path, "an xsd:dateTime such as 2024-01-31T12:00:00Z") from None
        return text
    if kind == "binary":
        return _check_text(value, path, MAX_BINARY)
    return _check_text(value, path, MAX_STRING)


def coerce_value(attr: Attribute, value: Any, path: str, *, creating: bool) -> Any:
    """Check a value (list for multi-valued attributes). ``None`` means unassigned."""
    if value is None:
        return None
    if attr.multi_valued:
        if not isinstance(value, list):
            raise _type_error(path, "an array")
        if len(value) > MAX_VALUES and attr.name not in UNCAPPED:
            raise InvalidValueError(f"Attribute '{path}' has more than {MAX_VALUES} values.")
        items = [coerce_single(attr, v, path, creating=creating) for v in value]
        items = [i for i in items if i not in (None, {})]
        if attr.name not in UNCAPPED:
            # Members are de-duplicated by id where they are stored (services.groups).
            items = unique_values(attr, items)
        check_primary(items, path)
        return items or None
    return coerce_single(attr, value, path, creating=creating)


def _compare_form(attr: Attribute, value: Any) -> Any:
    if isinstance(value, str):
        return exact(value) if attr.case_exact else fold(value)
    if isinstance(value, list):
        return tuple(_compare_form(attr, v) for v in value)
    return value


def value_key(attr: Attribute, item: Any) -> Any:
    """What makes two values of a multi-valued attribute the same value.

    Every sub-attribute but ``primary`` counts, compared as the schema says
    (``caseExact``), so ``BJensen@Example.com`` and ``bjensen@example.com`` are
    one e-mail. ``primary`` is left out: RFC 7643 §2.4 makes an absent
    ``primary`` false, so a value re-sent without it (or with false) is the same
    value, not a second one.
    """
    if not isinstance(item, dict):
        return _compare_form(attr, item)
    parts = []
    for name, sub_value in item.items():
        if name == "primary":
            continue
        sub = attr.sub(name)
        parts.append((name, _compare_form(sub, sub_value) if sub else sub_value))
    return tuple(sorted(parts, key=lambda p: p[0]))


def unique_values(attr: Attribute, items: list[Any]) -> list[Any]:
    """``items`` without repeats (``value_key``); a repeat sent as primary makes the kept one so."""
    out: list[Any] = []
    seen: dict[Any, int] = {}
    for item in items:
        key = value_key(attr, item)
        if key not in seen:
            seen[key] = len(out)
            out.append(item)
        elif isinstance(item, dict) and item.get("primary") is True:
            out[seen[key]] = {**out[seen[key]], "primary": True}
    return out


def coerce_single(attr: Attribute, value: Any, path: str, *, creating: bool) -> Any:
    if value is None:
        return None
    if attr.type != "complex":
        return coerce_simple(attr, value, path)
    if isinstance(value, str) and attr.sub("value") is not None:
        # Entra ID sends the enterprise manager as a bare id string.
        value = {"value": value}
    if not isinstance(value, dict):
        raise _type_error(path, "an object")
    out: Doc = {}
    no_id = False
    for key, sub_value in value.items():
        sub = attr.sub(key)
        if sub is None:
            raise InvalidSyntaxError(f"Unknown sub-attribute '{path}.{key}'.")
        if sub.mutability == "readOnly":
            continue  # RFC 7643 §2.2: read-only values sent by clients are ignored.
        checked = coerce_value(sub, sub_value, f"{path}.{sub.name}", creating=creating)
        if checked is not None:
            out[sub.name] = checked
        elif sub.name == "value":
            no_id = True
    if not attr.multi_valued and (no_id or _blank(out.get("value"))):
        # A reference without an id names no one: IdPs clear the enterprise manager by
        # sending "" (Entra), {"value": ""} or {"value": null}. It is unassigned (RFC 7643
        # §2.5), so a PATCH replace removes it and `manager pr` does not match.
        return None
    return out


def _blank(value: Any) -> bool:
    """A string of nothing but white space (or none at all)."""
    return isinstance(value, str) and not value.strip()


def check_primary(items: list[Any], path: str) -> None:
    # RFC 7643 §2.4: the primary attribute value "true" MUST appear no more than once.
    primaries = [i for i in items if isinstance(i, dict) and i.get("primary") is True]
    if len(primaries) > 1:
        raise InvalidValueError(f"Only one value of '{path}' may be primary.")


def parse_resource(rt: ResourceType, body: Any, *, creating: bool, required: bool = True) -> Doc:
    """Validate a POST/PUT body into a canonical document (RFC 7643 §2, §3). ``required``
    False: a part of a document whose required attributes are kept as stored
    (``patch.validated_change``), not checked here."""
    if not isinstance(body, dict):
        raise InvalidSyntaxError("The request body must be a JSON object.")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise InvalidSyntaxError("'schemas' is required and must be an array of URIs.")
    if not any(s.lower() == rt.core.lower() for s in schemas):
        raise InvalidValueError(f"'schemas' must contain {rt.core}.")
    doc: Doc = {}
    for key, value in body.items():
        lowered = key.lower()
        if lowered in ("schemas", "id", "meta"):
            continue  # server-owned (RFC 7643 §3.1)
        if ":" in key:
            urn = rt.canonical_urn(key)
            if urn is None:
                raise InvalidSyntaxError(f"Unknown schema extension '{key}'.")
            if urn == rt.core:
                # Some clients nest core attributes under the core URN.
                if not isinstance(value, dict):
                    raise _type_error(key, "an object")
                doc.update(parse_resource(rt, {"schemas": [rt.core], **value}, creating=creating))
                continue
            ext = parse_extension(rt, urn, value, creating=creating)
            if ext:
                doc[urn] = ext
            continue
        found = rt.find(None, key)
        if found is None or found[0] != rt.core:
            raise InvalidSyntaxError(f"Unknown attribute '{key}' for resource type {rt.name}.")
        attr = found[1]
        if attr.mutability == "readOnly":
            continue
        checked = coerce_value(attr, value, attr.name, creating=creating)
        if checked not in (None, {}):
            # RFC 7643 §2.5: a complex value whose sub-attributes are all null is unassigned.
            doc[attr.name] = checked
    if rt is GROUP:
        check_member_values(doc.get("members") or ())
    if required:
        check_required(rt, doc)
    return doc


def _members_attribute() -> Attribute:
    found = GROUP.find(None, "members")
    assert found is not None, "the Group schema defines members"
    return found[1]


MEMBERS = _members_attribute()


def parse_member(value: Any) -> Doc:
    """One group member as POST and PUT check each of ``members`` (``parse_resource``):
    a bare id or an object of the schema's sub-attributes (names in any case, values of
    their types; an unknown one is refused), naming its id by "value". A PATCH's member
    values go through it too, so they are refused where a POST refuses them."""
    member = coerce_single(MEMBERS, value, MEMBERS.name, creating=False)
    check_member_values([member or {}])
    assert isinstance(member, dict)
    return member


def check_member_values(members: Any) -> None:
    """Each member names its id: one given by "$ref", "type" or "display" alone is refused,
    before anything is written (the services look members up by "value")."""
    for member in members:
        if not isinstance(member.get("value"), str):
            raise InvalidValueError(MEMBER_VALUE_NEEDED)


def parse_extension(rt: ResourceType, urn: str, value: Any, *, creating: bool) -> Doc:
    schema = rt.schema(urn)
    assert schema is not None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(urn, "an object")
    out: Doc = {}
    for key, sub_value in value.items():
        attr = schema.attribute(key)
        if attr is None:
            raise InvalidSyntaxError(f"Unknown attribute '{key}' in {urn}.")
        if attr.mutability == "readOnly":
            continue
        checked = coerce_value(attr, sub_value, f"{urn}:{attr.name}", creating=creating)
        if checked not in (None, {}):
            out[attr.name] = checked  # as in parse_resource: null and {} are unassigned
    return out


def check_required(rt: ResourceType, doc: Doc) -> None:
    for urn in rt.schemas:
        schema = rt.schema(urn)
        assert schema is not None
        target = doc if urn == rt.core else doc.get(urn)
        if target is None or (urn != rt.core and not target):
            continue
        for attr in schema.attributes.values():
            if not attr.required or attr.mutability == "readOnly":
                continue
            value = target.get(attr.name)
            if value in (None, "", []):
                raise InvalidValueError(f"Attribute '{attr.name}' is required.")
            if _blank(value):
                # RFC 7643 §4.1.1: "Each User MUST include a non-empty userName value";
                # one of only blanks or a tab is as empty (no one signs in with it).
                raise InvalidValueError(f"Attribute '{attr.name}' must not be blank.")


def check_immutable(rt: ResourceType, old: Doc, new: Doc) -> None:
    """RFC 7643 §2.2 immutable: may be set once, never changed afterwards."""
    for urn in rt.schemas:
        schema = rt.schema(urn)
        assert schema is not None
        old_part = old if urn == rt.core else old.get(urn) or {}
        new_part = new if urn == rt.core else new.get(urn) or {}
        for attr in schema.attributes.values():
            if attr.mutability != "immutable" or attr.name == "members":
                continue
            before, after = old_part.get(attr.name), new_part.get(attr.name)
            if before is not None and after != before:
                raise MutabilityError(f"Attribute '{attr.name}' is immutable.")


# --- projection (RFC 7644 §3.4.2.5, §3.9) ---------------------------------


def check_member_count(count: int, limit: int) -> None:
    """A request names at most ``limit`` (SCIM_MAX_INLINE_MEMBERS) members: POST, PUT, PATCH.

    The same number bounds what a GET returns inline, so a group written in one
    request can always be read back in one; larger groups grow by further PATCH
    requests. Checked before anything is written.
    """
    if count > limit:
        raise InvalidValueError(
            f"This request names {count} group members; at most {limit} are accepted per "
            "request (SCIM_MAX_INLINE_MEMBERS). Add the others with further PATCH requests."
        )


@dataclass(frozen=True)
class UserReplacement:
    """A PUT of a user (RFC 7644 §3.5.1): the parsed document, applied to the stored one."""

    doc: Doc

    def apply(self, current: Doc) -> Doc:
        check_immutable(USER, current, self.doc)
        if "active" not in self.doc:
            # RFC 7644 §3.5.1: an omitted attribute MAY be taken as not asserted. For
            # `active` it must be: read as true it would reactivate a leaver.
            return {**self.doc, "active": current.get("active", True)}
        return self.doc


@dataclass(frozen=True)
class GroupReplacement:
    """A PUT of a group: its attributes, and its members replaced by those listed."""

    doc: Doc

    def apply(self, current: Doc) -> GroupEdit:
        check_immutable(GROUP, current, self.doc)
        members = tuple(self.doc.get("members") or ())
        return GroupEdit(self.doc, (MemberChange("replace", members),))


def _parse_names(rt: ResourceType, names: list[str] | None, param: str) -> set[tuple[str, ...]]:
    wanted: set[tuple[str, ...]] = set()
    for name in names or []:
        try:
            parsed = parse_path(name)
        except PathError:
            raise InvalidValueError(f"'{name}' in {param} is not an attribute path.") from None
        if parsed.filter is not None:
            # RFC 7644 §3.10 attribute notation has no value filter; ignoring the
            # filter would silently return or drop every value of the attribute.
            raise InvalidValueError(f"'{name}' in {param} must not contain a value filter.")
        path = parsed.path
        if path.attr == "" and path.uri is not None:
            urn = rt.canonical_urn(path.uri)
            if urn is None:
                raise InvalidValueError(f"Unknown schema '{path.uri}' in {param}.")
            wanted.add((urn,))
            continue
        found = rt.find(path.uri, path.attr)
        if found is None:
            # RFC 7644 §3.4.2.5 asks for no error on unknown names in attribute
            # lists; an unknown name simply selects nothing.
            continue
        urn, attr = found
        if path.sub is not None:
            sub = attr.sub(path.sub)
            if sub is None:
                continue
            wanted.add((urn, attr.name.lower(), sub.name.lower()))
        else:
            wanted.add((urn, attr.name.lower()))
    return wanted


def split_param(raw: str | list[str] | None) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        parts = [p for item in raw for p in str(item).split(",")]
    else:
        parts = raw.split(",")
    names = [p.strip() for p in parts if p.strip()]
    return names or None


def check_projection(
    rt: ResourceType, attributes: list[str] | None, excluded: list[str] | None
) -> None:
    """Refuse (400) the names ``project`` would refuse: a write checks them before it
    changes anything, not when it draws its answer after the commit."""
    if attributes:
        _parse_names(rt, attributes, "attributes")
    if excluded:
        _parse_names(rt, excluded, "excludedAttributes")


def project(
    rt: ResourceType,
    resource: Doc,
    attributes: list[str] | None = None,
    excluded: list[str] | None = None,
) -> Doc:
    """Apply ``attributes`` / ``excludedAttributes`` and the ``returned`` rules.

    Without either parameter a rendered resource is returned as it is: the
    renderers never emit ``returned: never`` values (the password is not
    stored) and our schemas have no ``returned: request`` attributes.
    """
    if not attributes and not excluded:
        return resource
    include = _parse_names(rt, attributes, "attributes") if attributes else None
    exclude = _parse_names(rt, excluded, "excludedAttributes") if excluded else set()
    # RFC 7644 §3.10: the core schema's URN names all of its attributes, as an
    # extension's names the whole extension.
    core_include = None if include is not None and (rt.core,) in include else include
    core_excluded = (rt.core,) in exclude
    out: Doc = {}
    for key, value in resource.items():
        if key == "schemas":
            out[key] = value
            continue
        if ":" in key:
            urn = rt.canonical_urn(key)
            schema = rt.schema(key)
            if urn is None or schema is None or not isinstance(value, dict):
                continue
            if (urn,) in exclude:
                continue
            # Naming the extension URN in `attributes` selects all of it.
            whole = include is not None and (urn,) in include
            part = {}
            for sub_key, sub_value in value.items():
                attr = schema.attribute(sub_key)
                if attr is None:
                    continue
                kept = _keep(urn, attr, sub_value, None if whole else include, exclude)
                if kept is not None:
                    part[sub_key] = kept
            if part:
                out[key] = part
            continue
        found = rt.find(None, key)
        if found is None:
            continue
        if core_excluded and found[1].returned != "always":
            continue
        kept = _keep(rt.core, found[1], value, core_include, exclude)
        if kept is not None:
            out[key] = kept
    if isinstance(out.get("schemas"), list):
        # List the core schema and only the extensions the response still carries.
        out["schemas"] = [u for u in out["schemas"] if u == rt.core or u in out]

    return out


def _returnable(attr: Attribute | None) -> bool:
    return attr is not None and attr.returned in ("always", "default")


def _keep(
    urn: str,
    attr: Attribute,
    value: Any,
    include: set[tuple[str, ...]] | None,
    exclude: set[tuple[str, ...]],
) -> Any:
    name = attr.name.lower()
    if attr.returned == "never":
        return None
    if attr.returned == "always":
        return value
    if include is None:
        if attr.returned == "request" or (urn, name) in exclude:
            return None
        subs_out = {k[2] for k in exclude if len(k) == 3 and k[:2] == (urn, name)}
        return _filter_subs(attr, value, drop=subs_out) if subs_out else value
    if (urn, name) in include:
        return value
    subs_in = {k[2] for k in include if len(k) == 3 and k[:2] == (urn, name)}
    if not subs_in:
        return None
    return _filter_subs(attr, value, keep=subs_in)


def _filter_subs(
    attr: Attribute, value: Any, *, keep: set[str] | None = None, drop: set[str] | None = None
) -> Any:
    def one(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        result = {}
        for k, v in item.items():
            sub = attr.sub(k)
            always = sub is not None and sub.returned == "always"
            kept = keep is not None and k.lower() in keep
            not_dropped = drop is not None and k.lower() not in drop
            if always or kept or not_dropped:
                result[k] = v
        return result or None

    if isinstance(value, list):
        items = [one(v) for v in value]
        items = [i for i in items if i]
        return items or None
    return one(value)
