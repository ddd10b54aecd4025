"""PATCH (RFC 7644 §3.5.2) applied to a canonical document.

Operations are applied in order to a copy of the resource; the caller
validates and stores the result only if every operation succeeded, which is
what makes a PATCH atomic. Group membership operations are not applied to the
document: they are returned as ``MemberChange`` items so that the service can
insert or delete exactly the member rows concerned.

``UserPatch`` and ``GroupPatch`` are a parsed request as a value: the service
applies one to the stored document under its row lock (``apply`` is pure).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from scim_server.errors import (
    InvalidPathError,
    InvalidSyntaxError,
    InvalidValueError,
    MutabilityError,
    NoTargetError,
)
from scim_server.scim.filter_ast import And, Compare, Expr, Not, Or, PathError, Present, ValuePath
from scim_server.scim.filter_parser import parse_path
from scim_server.scim.filters import member_selection
from scim_server.scim.resources import (
    MEMBERS,
    check_immutable,
    check_member_count,
    coerce_single,
    coerce_value,
    parse_extension,
    parse_member,
    parse_resource,
    value_key,
)
from scim_server.scim.schema import GROUP, PATCH_OP, USER, Attribute, ResourceType
from scim_server.services.groups import GroupEdit
from scim_server.services.members import MemberChange
from scim_server.text import exact, fold

Doc = dict[str, Any]
MAX_OPERATIONS = 1000


@dataclass
class PatchResult:
    doc: Doc
    members: list[MemberChange]


def parse_patch_request(body: Any) -> list[Doc]:
    """Validate the PatchOp envelope (RFC 7644 §3.5.2) and return its operations."""
    if not isinstance(body, dict):
        raise InvalidSyntaxError("The request body must be a JSON object.")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP.lower() not in [
        s.lower() for s in schemas if isinstance(s, str)
    ]:
        raise InvalidSyntaxError(f"'schemas' must contain {PATCH_OP}.")
    ops = body.get("Operations", body.get("operations"))
    if not isinstance(ops, list) or not ops:
        raise InvalidSyntaxError("'Operations' must be a non-empty array.")
    if len(ops) > MAX_OPERATIONS:
        raise InvalidSyntaxError(f"At most {MAX_OPERATIONS} operations per PATCH.")
    for op in ops:
        if not isinstance(op, dict):
            raise InvalidSyntaxError("Each operation must be a JSON object.")
        name = op.get("op")
        # Entra ID capitalises op names ("Add", "Replace", "Remove").
        if not isinstance(name, str) or name.lower() not in ("add", "replace", "remove"):
            raise InvalidSyntaxError(f"Unknown PATCH op {name!r}: use add, replace or remove.")
        path = op.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise InvalidPathError("'path' must be a non-empty string.")
    return ops


@dataclass(frozen=True)
class UserPatch:
    """A validated PatchOp for one user (RFC 7644 §3.5.2)."""

    resource_id: str
    operations: list[Doc]

    def apply(self, current: Doc) -> Doc:
        """The new, validated document; raises (changing nothing) if any operation fails.

        Its values that no operation touched are ``current``'s own (``apply_patch``)."""
        patched = apply_patch(USER, current, self.operations, resource_id=self.resource_id).doc
        new = validated_change(USER, current, patched)
        if _has_immutable(USER):
            check_immutable(USER, current, new)
        return new


def validated_change(rt: ResourceType, current: Doc, patched: Doc) -> Doc:
    """``parse_resource`` of ``patched`` (``current`` with operations applied), validating
    only the top-level attributes whose value differs from ``current``'s.

    ``current`` is a stored document: ``parse_resource``'s output, which it returns
    unchanged (canonical names, coerced values); a null or empty value (which it drops,
    and which an account opened for a contact, ``services.access``, may hold) is parsed
    again like a changed one. A stored value the schema would now refuse (a limit added
    since it was written) is kept: the change is checked, not the past.
    ``parse_resource`` checks each top-level key on its own and then the required
    attributes, so an attribute equal to the stored one comes out as it is; the changed
    ones and a changed ``userName`` (whose absence ``check_required`` reports) are checked
    in ``patched``'s order, so the first error is the one the whole document's parse
    reports. A PATCH of ``active`` (the leaver path) checks that one attribute, whatever
    the stored userName is. A value that is ``current``'s own
    object (no operation touched it: ``apply_patch``) is the stored one, unchanged, without
    writing both as JSON.
    """
    body: Doc = {"schemas": [rt.core]}
    # The stored userName, unchanged: not judged again (one stored before a rule was added,
    # a blank one, must not stop a deactivation); the required check then has nothing new.
    stored_name = current.get("userName")
    name_kept = isinstance(stored_name, str) and patched.get("userName") == stored_name
    for key, value in patched.items():
        if (
            (key == "userName" and not name_kept)
            or key not in current
            or value is None
            or value == []
            or value == {}
            or (value is not current[key] and not _same_json(current[key], value))
        ):
            if not _canonical(rt, key):
                # A name the parse would rename or refuse: the whole document's parse.
                return parse_resource(rt, {"schemas": [rt.core], **patched}, creating=False)
            body[key] = value
    checked = parse_resource(rt, body, creating=False, required=not name_kept)
    out: Doc = {}
    for key, value in patched.items():
        if key not in body:
            out[key] = value
        elif key in checked:
            out[key] = checked[key]
    return out


@cache
def _has_immutable(rt: ResourceType) -> bool:
    """Whether ``check_immutable`` has anything to check for ``rt`` (the User schemas have no
    immutable attribute: a PATCH of a user need not walk them)."""
    for urn in rt.schemas:
        schema = rt.schema(urn)
        assert schema is not None
        for attr in schema.attributes.values():
            if attr.mutability == "immutable" and attr.name != "members":
                return True
    return False


def _canonical(rt: ResourceType, key: str) -> bool:
    """``key`` is a top-level name as ``parse_resource`` writes it (a core attribute's own
    spelling, an extension's URN as the schema spells it)."""
    if ":" in key:
        return key != rt.core and rt.canonical_urn(key) == key
    found = rt.find(None, key)
    return found is not None and found[0] == rt.core and found[1].name == key


@dataclass(frozen=True)
class GroupPatch:
    """A validated PatchOp for one group; ``max_members``: SCIM_MAX_INLINE_MEMBERS."""

    resource_id: str
    operations: list[Doc]
    max_members: int

    def apply(self, current: Doc) -> GroupEdit:
        """The new attributes and the membership changes, both validated."""
        result = apply_patch(GROUP, current, self.operations, resource_id=self.resource_id)
        check_member_count(sum(len(c.values) for c in result.members), self.max_members)
        new = parse_resource(GROUP, {"schemas": [GROUP.core], **result.doc}, creating=False)
        check_immutable(GROUP, current, new)
        return GroupEdit(new, tuple(result.members))


def apply_patch(rt: ResourceType, doc: Doc, ops: list[Doc], *, resource_id: str) -> PatchResult:
    """Apply validated operations to a copy of ``doc``: a new top-level object whose
    attributes are copied (deep) when an operation first addresses them (``_Patcher.own``);
    the others are ``doc``'s own values, which nothing here changes. A user's PATCH of one
    attribute copies that attribute, not the whole user."""
    patcher = _Patcher(rt, dict(doc), resource_id)
    for op in ops:
        name = op["op"].lower()
        path = op.get("path")
        value = op.get("value")
        if path is None:
            patcher.no_path(name, value)
        else:
            patcher.with_path(name, path.strip(), value, "value" in op)
    return PatchResult(patcher.doc, patcher.members)


def _same_json(a: Any, b: Any) -> bool:
    """The same JSON text (``True == 1`` and ``1 == 1.0`` in Python, not to a schema's
    type check); a value orjson cannot write counts as different (it is then checked)."""
    try:
        return bool(orjson.dumps(a) == orjson.dumps(b))
    except TypeError:
        return False


def _copy_json(value: Any) -> Any:
    """A deep copy of a JSON document (dicts, lists, immutable scalars): a stored user's is
    copied on every PATCH, and ``copy.deepcopy``'s memo and dispatch cost about four
    times this. Anything else is left to ``copy.deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if kind is list:
        return [_copy_json(item) for item in value]
    if value is None or kind in (str, int, float, bool):
        return value
    return copy.deepcopy(value)


class _Patcher:
    def __init__(self, rt: ResourceType, doc: Doc, resource_id: str) -> None:
        self.rt = rt
        self.doc = doc
        self.resource_id = resource_id
        self.members: list[MemberChange] = []
        self.owned: set[str] = set()  # the top-level keys whose values ``own`` copied

    def own(self, key: str) -> None:
        """Make the value at ``key`` this patch's own (a deep copy, once), before an
        operation changes it in place: the document's other values are the caller's."""
        if key not in self.owned:
            self.owned.add(key)
            if key in self.doc:
                self.doc[key] = _copy_json(self.doc[key])

    # -- operations without a path ---------------------------------------

    def no_path(self, op: str, value: Any) -> None:
        # RFC 7644 §3.5.2.2: remove needs a path.
        if op == "remove":
            raise NoTargetError("A 'remove' operation needs a 'path'.")
        if not isinstance(value, dict):
            raise InvalidValueError(f"A '{op}' without 'path' needs an object 'value'.")
        for key, sub_value in value.items():
            lowered = key.lower()
            if lowered == "schemas":
                continue
            if lowered == "id":
                # Okta repeats the id in a no-path replace (group rename).
                if sub_value != self.resource_id:
                    raise MutabilityError("Attribute 'id' is read-only.")
                continue
            if lowered == "meta":
                continue
            # Entra ID sends dotted (`name.givenName`) and URN-qualified keys here.
            self.with_path(op, key, sub_value, True)

    # -- operations with a path -------------------------------------------

    def with_path(self, op: str, raw_path: str, value: Any, has_value: bool) -> None:
        try:
            parsed = parse_path(raw_path)
        except PathError as exc:
            raise InvalidPathError(str(exc)) from None
        path = parsed.path
        if op != "remove" and not has_value:
            raise InvalidValueError(f"A '{op}' operation needs a 'value'.")
        if path.attr == "" and path.uri is not None:
            if self.rt.canonical_urn(path.uri) == self.rt.core:
                self.core_object(op, value)
            else:
                self.whole_extension(op, path.uri, value)
            return
        found = self.rt.find(path.uri, path.attr)
        if found is None:
            raise InvalidPathError(f"Unknown attribute '{raw_path}'.")
        urn, attr = found
        if attr.mutability == "readOnly":
            # RFC 7644 §3.5.2: an operation on a read-only attribute (id, meta,
            # groups) is an error, not silently ignored.
            raise MutabilityError(f"Attribute '{attr.name}' is read-only.")
        if urn == self.rt.core and attr.name == "schemas":
            # The server lists the schemas from the attributes the resource has;
            # a change to the list alone would be a 200 that changed nothing.
            raise MutabilityError(
                "Attribute 'schemas' is set by the server; add or remove extension attributes."
            )
        sub: Attribute | None = None
        sub_name = path.sub or parsed.value_sub
        if path.sub and parsed.filter is not None:
            raise InvalidPathError(f"Invalid path '{raw_path}'.")
        if sub_name is not None:
            sub = attr.sub(sub_name)
            if sub is None:
                raise InvalidPathError(f"Unknown sub-attribute in '{raw_path}'.")
            if sub.mutability == "readOnly":
                raise MutabilityError(f"Sub-attribute '{attr.name}.{sub.name}' is read-only.")
        if parsed.filter is not None and not attr.multi_valued:
            raise InvalidPathError(f"'{attr.name}' is not multi-valued; it takes no filter.")
        if sub is None and parsed.filter is None and (op == "remove" or value is None):
            self.check_unassign(urn, attr)
        if self.rt is GROUP and urn == self.rt.core and attr.name == "members":
            self.members_op(op, parsed.filter, sub, value)
            return
        self.own(attr.name if urn == self.rt.core else urn)
        container = self.container(urn, create=op != "remove")
        if container is None:
            return
        if parsed.filter is not None:
            self.filtered(op, container, attr, parsed.filter, sub, value)
        elif sub is not None:
            self.sub_op(op, container, attr, sub, value)
        else:
            self.attr_op(op, container, attr, value)

    def container(self, urn: str, *, create: bool) -> Doc | None:
        if urn == self.rt.core:
            return self.doc
        if urn not in self.doc and not create:
            return None
        return self.doc.setdefault(urn, {})

    def core_object(self, op: str, value: Any) -> None:
        """RFC 7644 §3.5.2: the core schema's URN as the path (or as a key of a no-path
        value) names its attributes, as POST and PUT take them nested under it."""
        if op == "remove":
            # RFC 7644 §3.5.2.2: the core schema holds required attributes (userName).
            raise MutabilityError(
                f"The core schema {self.rt.core} cannot be removed; remove its attributes."
            )
        if not isinstance(value, dict):
            raise InvalidValueError(f"A value for {self.rt.core} must be an object.")
        self.no_path(op, value)

    def whole_extension(self, op: str, uri: str, value: Any) -> None:
        urn = self.rt.canonical_urn(uri)
        if urn is None or urn == self.rt.core:
            raise InvalidPathError(f"Unknown schema extension '{uri}'.")
        schema = self.rt.schema(urn)
        assert schema is not None
        server_managed = all(a.mutability == "readOnly" for a in schema.attributes.values())
        self.own(urn)
        if value is None:
            # RFC 7643 §2.5: null is unassigned: a replace (or add) of the whole extension
            # with null removes it, as a remove does (it answered 200 and kept it).
            op = "remove"
        if op == "remove":
            if server_managed:
                # RFC 7644 §3.5.2.2: removing read-only attributes is a mutability error
                # (the product extension is the server's view of the account).
                raise MutabilityError(f"The extension {urn} is read-only: it cannot be removed.")
            self.doc.pop(urn, None)
            return
        value = _without_own_schemas(urn, value)
        if isinstance(value, dict):
            for key in value:
                attr = schema.attribute(key)
                if attr is not None and attr.mutability == "readOnly":
                    # RFC 7644 §3.5.2: a client MUST NOT modify a read-only attribute;
                    # ignoring it would answer 200 for a change that was not made.
                    raise MutabilityError(f"Attribute '{urn}:{attr.name}' is read-only.")
        # Checked as a POST checks it (an object, the schema's attributes, their types)
        # before any of it is applied.
        checked = parse_extension(self.rt, urn, value, creating=False)
        target = self.doc.setdefault(urn, {})
        if not isinstance(value, dict):
            return
        for key, sub_value in value.items():
            attr = schema.attribute(key)
            assert attr is not None, "parse_extension refuses an attribute the schema has not"
            if attr.name not in checked:
                # RFC 7643 §2.5: an attribute given as null (Entra's department cleared at
                # the source) is unassigned, as by a path to it.
                self.check_unassign(urn, attr)
            self.attr_op(op, target, attr, sub_value)

    # -- plain attributes ------------------------------------------------------

    def attr_op(self, op: str, container: Doc, attr: Attribute, value: Any) -> None:
        current = container.get(attr.name)
        if op == "remove":
            self.check_immutable(attr, current, None)
            if attr.multi_valued and value is not None:
                # Remove exactly the values named: a list (as Entra sends members), one
                # value object or a bare value as a list of one. An empty list names none
                # and removes nothing; only a remove without a value removes them all.
                drop = [_value_key(v) for v in (value if isinstance(value, list) else [value])]
                if None in drop:
                    raise InvalidValueError(
                        f"A 'remove' of '{attr.name}' values names each by its 'value'."
                    )
                if drop:
                    # RFC 7643 §2.4, §4.1.2: a value is named as the schema compares it;
                    # emails.value is caseExact false, so OLD@Example.com names
                    # old@example.com (as ``resources.value_key`` compares values).
                    named = attr.sub("value") or attr
                    norm = exact if named.case_exact else fold

                    def key(v: Any) -> Any:
                        k = _value_key(v)
                        return norm(k) if isinstance(k, str) else k

                    gone = [key(v) for v in drop]
                    kept = [v for v in current or [] if key(v) not in gone]
                    _assign(container, attr.name, kept)
            elif not attr.multi_valued and _names_other(attr, value, current):
                # Entra removes a manager by naming it ("value": [{"value": id}], or the bare
                # id): one that names someone else (sent late, after the manager changed)
                # removes nothing.
                return
            else:
                container.pop(attr.name, None)
            return
        if attr.multi_valued and not isinstance(value, list):
            value = [value]
        new = coerce_value(attr, value, attr.name, creating=False)
        if new is None:
            # RFC 7643 §2.5: null is unassigned. RFC 7644 §3.5.2.1: an add to a single-valued
            # attribute replaces it, so it unassigns it too; an add of no values adds none.
            if op == "replace" or not attr.multi_valued:
                self.check_immutable(attr, current, None)
                container.pop(attr.name, None)
            return
        if attr.multi_valued:
            if op == "add":
                new = _merge(attr, list(current or []), new)
            self.check_immutable(attr, current, new)
            _assign(container, attr.name, new)
            return
        if attr.type == "complex" and isinstance(current, dict):
            # RFC 7644 §3.5.2.1/§3.5.2.3: sub-attributes not given are left unchanged; RFC
            # 7643 §2.5: one given as null is unassigned (as `replace name.givenName null`).
            unassigned = _null_subs(attr, value)
            new = {k: v for k, v in {**current, **new}.items() if k not in unassigned}
        self.check_immutable(attr, current, new)
        _assign(container, attr.name, new)

    def sub_op(self, op: str, container: Doc, attr: Attribute, sub: Attribute, value: Any) -> None:
        if attr.multi_valued:
            # `emails.value` without a filter addresses every element.
            items = container.get(attr.name) or []
            if op != "remove" and not items:
                raise NoTargetError(f"'{attr.name}' has no values to update.")
            for item in items:
                self.set_sub(op, item, attr, sub, value)
            _assign(container, attr.name, [i for i in items if i])
            return
        current = container.get(attr.name)
        if op == "remove":
            if isinstance(current, dict):
                current.pop(sub.name, None)
                _assign(container, attr.name, current)
            return
        target = dict(current) if isinstance(current, dict) else {}
        self.set_sub(op, target, attr, sub, value)
        self.check_immutable(attr, current, target)
        container[attr.name] = target

    def set_sub(self, op: str, item: Doc, attr: Attribute, sub: Attribute, value: Any) -> None:
        if op == "remove":
            item.pop(sub.name, None)
            return
        checked = coerce_value(sub, value, f"{attr.name}.{sub.name}", creating=False)
        if checked is None:
            item.pop(sub.name, None)
        else:
            item[sub.name] = checked

    # -- value-path filters: emails[type eq "work"].value -------------------

    def filtered(
        self,
        op: str,
        container: Doc,
        attr: Attribute,
        where: Expr,
        sub: Attribute | None,
        value: Any,
    ) -> None:
        items: list[Doc] = list(container.get(attr.name) or [])
        hits = [i for i, item in enumerate(items) if matches(where, item, attr)]
        if op == "remove":
            if not hits:
                # RFC 7644 §3.12: noTarget, "the specified path ... contains a filter
                # that yields no match".
                raise NoTargetError(f"No value of '{attr.name}' matches the filter.")
            if sub is None:
                items = [item for i, item in enumerate(items) if i not in hits]
            else:
                for i in hits:
                    items[i].pop(sub.name, None)
            _assign(container, attr.name, [i for i in items if i])
            return
        if not hits:
            # Entra ID adds (and replaces) through a filter that matches nothing
            # yet, e.g. `emails[type eq "work"].value` for a user without one:
            # create the element the filter describes.
            seed = _seed_from_filter(where, attr)
            if seed is None:
                raise NoTargetError(f"No value of '{attr.name}' matches the filter.")
            items.append(seed)
            hits = [len(items) - 1]
        for i in hits:
            if sub is not None:
                self.set_sub(op, items[i], attr, sub, value)
            else:
                checked = coerce_single(attr, value, attr.name, creating=False)
                if not isinstance(checked, dict):
                    raise InvalidValueError(f"'{attr.name}' values are objects.")
                items[i] = {**items[i], **checked} if op == "add" else checked
        items = _single_primary(items, [items[i] for i in hits])
        new = coerce_value(attr, items, attr.name, creating=False)
        _assign(container, attr.name, new or [])

    # -- group members -------------------------------------------------------

    def members_op(self, op: str, where: Expr | None, sub: Attribute | None, value: Any) -> None:
        if sub is not None:
            # RFC 7643 §4.2: member sub-attributes (display, type) are immutable, set
            # only when the member is added.
            raise MutabilityError("Member sub-attributes cannot be changed; add or remove members.")
        if op == "remove":
            if where is not None:
                self.members.append(MemberChange("remove_where", where=member_selection(where)))
            elif value is None:
                # RFC 7644 §3.5.2.2: no filter, no value: every member is removed.
                self.members.append(MemberChange("clear"))
            elif isinstance(value, list):
                # Entra ID: Remove with path "members" and a value list removes those; an
                # empty list names no member and removes none (never "all of them").
                if value:
                    self.members.append(MemberChange("remove", _member_refs(value)))
            else:
                # One member object, or a bare id (as ``add`` takes it).
                self.members.append(MemberChange("remove", _member_refs([value])))
            return
        if value is None:
            value = []
        if not isinstance(value, list):
            value = [value]
        refs = _member_refs(value)
        if where is not None:
            # RFC 7644 §3.5.2.3: a filter that matches no member is noTarget, except an
            # all-`eq` one, which describes the member to add (Entra ID, as ``filtered``).
            must_match = _seed_from_filter(where, MEMBERS) is None
            selection = member_selection(where)
            self.members.append(
                MemberChange("remove_where", where=selection, must_match=must_match)
            )
            self.members.append(MemberChange("add", refs))
        elif op == "replace":
            self.members.append(MemberChange("replace", refs))
        else:
            self.members.append(MemberChange("add", refs))

    def check_unassign(self, urn: str, attr: Attribute) -> None:
        """Refuse to unassign (remove, or set to null) what cannot be unassigned."""
        if attr.required:
            # RFC 7644 §3.5.2.2: removing a required attribute is a mutability error.
            raise MutabilityError(f"Attribute '{attr.name}' is required; it cannot be removed.")
        if self.rt is USER and urn == self.rt.core and attr.name == "active":
            # RFC 7644 §3.5.2.2 would leave `active` unassigned, which has no meaning for
            # an account's status: read as true it would keep (or make) a leaver active.
            raise MutabilityError(
                "Attribute 'active' cannot be removed: replace it with false to deactivate "
                "the user, or with true to activate it."
            )
        if attr.mutability == "writeOnly":
            # The password is never stored in the document: a remove would change nothing.
            raise MutabilityError(
                f"Attribute '{attr.name}' cannot be removed; replace it to set a new value."
            )

    def check_immutable(self, attr: Attribute, before: Any, after: Any) -> None:
        if attr.mutability == "immutable" and before is not None and before != after:
            raise MutabilityError(f"Attribute '{attr.name}' is immutable.")


def _member_refs(values: list[Any]) -> tuple[Doc, ...]:
    """The member references of a PATCH value, each checked as POST and PUT check a member
    (``parse_member``: sub-attribute names in any case, RFC 7643 §2.1; their types; no
    unknown one), its "value" a resource id."""
    refs = []
    for item in values:
        member = parse_member(item)
        if len(member["value"]) > 64:
            raise InvalidValueError("A member 'value' must be a resource id.")
        ref: Doc = {"value": member["value"]}
        if "type" in member:
            ref["type"] = member["type"]
        if "display" in member:
            # RFC 7643 §4.2: the display a client sets when adding a member is kept.
            ref["display"] = member["display"]
        refs.append(ref)
    return tuple(refs)


def _without_own_schemas(urn: str, value: Any) -> Any:
    """A whole-extension value may name its own schema (clients built on typed SCIM models).

    Anything else in that ``schemas`` key is a contradiction, refused rather than guessed.
    """
    if not isinstance(value, dict):
        return value
    keys = [k for k in value if k.lower() == "schemas"]
    if not keys:
        return value
    named = value[keys[0]]
    if (
        not isinstance(named, list)
        or not named
        or not all(isinstance(s, str) and s.lower() == urn.lower() for s in named)
    ):
        raise InvalidValueError(f"'schemas' in a value for {urn} may only name {urn}.")
    return {k: v for k, v in value.items() if k != keys[0]}


def _merge(attr: Attribute, current: list[Any], added: list[Any]) -> list[Any]:
    """RFC 7644 §3.5.2.1 add to a multi-valued attribute: new values are appended; a value
    already there (``value_key``: absent primary is false) changes nothing, unless it is
    now sent as primary, which makes it the one primary value."""
    merged = list(current)
    position = {value_key(attr, item): i for i, item in enumerate(merged)}
    winners = []
    for item in added:
        key = value_key(attr, item)
        primary = isinstance(item, dict) and item.get("primary") is True
        if key in position:
            i = position[key]
            if primary and merged[i].get("primary") is not True:
                merged[i] = {**merged[i], "primary": True}
        else:
            i = position[key] = len(merged)
            merged.append(item)
        if primary:
            winners.append(merged[i])
    return _single_primary(merged, winners)


def _null_subs(attr: Attribute, value: Any) -> set[str]:
    """The sub-attributes a complex ``value`` gives as null, by their schema names (RFC 7643
    §2.1: names are case-insensitive); read-only ones are ignored, as ``coerce_single``
    ignores them."""
    if not isinstance(value, dict):
        return set()
    subs = (attr.sub(key) for key, sub_value in value.items() if sub_value is None)
    return {sub.name for sub in subs if sub is not None and sub.mutability != "readOnly"}


def _names_other(attr: Attribute, value: Any, current: Any) -> bool:
    """Whether a remove's value names single-valued complex values (``{"value": id}``, the
    bare id ``coerce_single`` takes for one, or a list of them) none of which is the one
    held now."""
    named = value if isinstance(value, list) else [value]
    # Entra sends the manager as a bare id: it names the manager as {"value": id} does.
    bare = attr.type == "complex" and attr.sub("value") is not None
    keys = [
        _value_key(v)
        for v in named
        if (isinstance(v, dict) and _value_name(v) is not None) or (bare and isinstance(v, str))
    ]
    if not keys or not named:
        return False
    return _value_key(current) not in keys


def _value_name(item: Doc) -> str | None:
    """The key under which ``item`` holds its "value": RFC 7643 §2.1 attribute names are
    case-insensitive, so a client's {"Value": ...} names it too."""
    return next((key for key in item if key.lower() == "value"), None)


def _value_key(item: Any) -> Any:
    if isinstance(item, dict):
        name = _value_name(item)
        return None if name is None else item[name]
    return item


def _assign(container: Doc, name: str, value: Any) -> None:
    if value in (None, [], {}):
        container.pop(name, None)
    else:
        container[name] = value


def _single_primary(items: list[Any], winners: list[Any]) -> list[Any]:
    """RFC 7644 §3.5.2: a value set primary clears primary on the others."""
    new_primary = [w for w in winners if isinstance(w, dict) and w.get("primary") is True]
    if not new_primary:
        return items
    keep = new_primary[-1]
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("primary") is True and item is not keep:
            item = {**item, "primary": False}
        out.append(item)
    return out


def _seed_from_filter(where: Expr, attr: Attribute) -> Doc | None:
    """The element an all-`eq` filter describes, or None if it describes no single one."""
    if isinstance(where, Compare) and where.op == "eq" and where.path.sub is None:
        sub = attr.sub(where.path.attr)
        if sub is None or sub.mutability == "readOnly" or where.value is None:
            return None
        return {sub.name: where.value}
    if isinstance(where, And):
        left = _seed_from_filter(where.left, attr)
        right = _seed_from_filter(where.right, attr)
        if left is None or right is None:
            return None
        return {**left, **right}
    return None


def matches(where: Expr, item: Any, attr: Attribute) -> bool:
    """Evaluate a value-path filter against one element (in memory)."""
    if isinstance(where, And):
        return matches(where.left, item, attr) and matches(where.right, item, attr)
    if isinstance(where, Or):
        return matches(where.left, item, attr) or matches(where.right, item, attr)
    if isinstance(where, Not):
        return not matches(where.expr, item, attr)
    if isinstance(where, ValuePath):
        raise InvalidPathError("Value paths cannot be nested.")
    assert isinstance(where, Present | Compare)
    if where.path.uri is not None or where.path.sub is not None:
        raise InvalidPathError("A value-path filter names plain sub-attributes.")
    sub = attr.sub(where.path.attr)
    if sub is None:
        raise InvalidPathError(f"Unknown sub-attribute '{attr.name}.{where.path.attr}'.")
    actual = item.get(sub.name) if isinstance(item, dict) else None
    if isinstance(where, Present):
        return actual not in (None, "", [])
    expected = where.value
    if expected is None:
        return (actual is None) == (where.op == "eq")
    if actual is None and sub.type == "boolean":
        # RFC 7643 §2.4: "If not specified, the value of primary SHALL be assumed to be
        # false": `primary eq false` selects a value without it (`pr`, `eq null` above
        # still ask whether it is there).
        actual = False
    if actual is None:
        return where.op == "ne"
    if isinstance(actual, bool) or isinstance(expected, bool):
        if where.op not in ("eq", "ne"):
            raise InvalidPathError("Booleans compare with eq or ne only.")
        if isinstance(expected, str):
            expected = expected.lower() == "true"
        return (actual == expected) == (where.op == "eq")
    a: Any
    e: Any
    if isinstance(actual, str) and isinstance(expected, str):
        norm = exact if sub.case_exact else fold
        a, e = norm(actual), norm(expected)
    else:
        a, e = actual, expected
    try:
        return {
            "eq": lambda: a == e,
            "ne": lambda: a != e,
            "co": lambda: isinstance(a, str) and e in a,
            "sw": lambda: isinstance(a, str) and a.startswith(e),
            "ew": lambda: isinstance(a, str) and a.endswith(e),
            "gt": lambda: a > e,
            "ge": lambda: a >= e,
            "lt": lambda: a < e,
            "le": lambda: a <= e,
        }[where.op]()
    except TypeError:
        raise InvalidPathError(
            f"Cannot compare '{attr.name}.{sub.name}' with {expected!r}."
        ) from None
