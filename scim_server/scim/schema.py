"""The RFC 7643 schemas, shipped as JSON data, and lookups over them.

Attribute names are case-insensitive (RFC 7643 §2.1): every lookup folds
the name and returns the definition with its canonical spelling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PRODUCT_SCHEMA = "urn:scim-server:schemas:extension:product:1.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"

_DIR = Path(__file__).parent / "schemas"


@dataclass(frozen=True)
class Attribute:
    """One attribute definition (RFC 7643 §7)."""

    name: str
    type: str
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    canonical_values: tuple[str, ...] = ()
    sub_attributes: dict[str, Attribute] = field(default_factory=dict)

    def sub(self, name: str) -> Attribute | None:
        return self.sub_attributes.get(name.lower())

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Attribute:
        subs = {s["name"].lower(): cls.from_json(s) for s in doc.get("subAttributes", [])}
        return cls(
            name=doc["name"],
            type=doc.get("type", "string"),
            multi_valued=bool(doc.get("multiValued", False)),
            required=bool(doc.get("required", False)),
            case_exact=bool(doc.get("caseExact", False)),
            mutability=doc.get("mutability", "readWrite"),
            returned=doc.get("returned", "default"),
            uniqueness=doc.get("uniqueness", "none"),
            canonical_values=tuple(doc.get("canonicalValues", ())),
            sub_attributes=subs,
        )


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    attributes: dict[str, Attribute]
    document: dict[str, Any]

    def attribute(self, name: str) -> Attribute | None:
        return self.attributes.get(name.lower())


# Common attributes (RFC 7643 §3.1) are not listed in the schema documents,
# but filters, sorting and `attributes=` may name them.
_STR = "string"
COMMON_ATTRIBUTES: dict[str, Attribute] = {
    "id": Attribute(
        "id", _STR, case_exact=True, mutability="readOnly", returned="always", uniqueness="server"
    ),
    "externalid": Attribute("externalId", _STR, case_exact=True),
    "schemas": Attribute(
        "schemas", "reference", multi_valued=True, case_exact=True, returned="always"
    ),
    "meta": Attribute(
        "meta",
        "complex",
        mutability="readOnly",
        sub_attributes={
            "resourcetype": Attribute("resourceType", _STR, case_exact=True, mutability="readOnly"),
            "created": Attribute("created", "dateTime", mutability="readOnly"),
            "lastmodified": Attribute("lastModified", "dateTime", mutability="readOnly"),
            "location": Attribute("location", "reference", case_exact=True, mutability="readOnly"),
            "version": Attribute("version", _STR, case_exact=True, mutability="readOnly"),
        },
    ),
}


@cache
def load(name: str) -> Schema:
    doc = json.loads((_DIR / f"{name}.json").read_text(encoding="utf-8"))
    attrs = {a["name"].lower(): Attribute.from_json(a) for a in doc["attributes"]}
    return Schema(doc["id"], doc.get("name", name), attrs, doc)


@dataclass(frozen=True)
class ResourceType:
    """A resource type with its core schema and extensions (RFC 7643 §6)."""

    name: str
    endpoint: str
    core: str
    extensions: tuple[str, ...]
    description: str

    @property
    def schemas(self) -> tuple[str, ...]:
        return (self.core, *self.extensions)

    def schema(self, urn: str) -> Schema | None:
        for candidate in self.schemas:
            if candidate.lower() == urn.lower():
                return schema_by_urn(candidate)
        return None

    def is_extension(self, urn: str) -> bool:
        return any(e.lower() == urn.lower() for e in self.extensions)

    def canonical_urn(self, urn: str) -> str | None:
        for candidate in self.schemas:
            if candidate.lower() == urn.lower():
                return candidate
        return None

    def find(self, uri: str | None, name: str) -> tuple[str, Attribute] | None:
        return _find(self, uri, name)

    def __hash__(self) -> int:
        return hash(self.name)

    def _find(self, uri: str | None, name: str) -> tuple[str, Attribute] | None:
        """Resolve an attribute name, optionally URN-qualified, to (schema URN, definition).

        Common attributes belong to the core schema. Without a URN, the core
        schema is searched first (RFC 7644 §3.10), then the extensions.
        """
        if uri is not None:
            schema = self.schema(uri)
            if schema is None:
                return None
            attr = schema.attribute(name)
            if attr is None and schema.id == self.core:
                attr = COMMON_ATTRIBUTES.get(name.lower())
            return (schema.id, attr) if attr else None
        common = COMMON_ATTRIBUTES.get(name.lower())
        if common is not None:
            return self.core, common
        for urn in self.schemas:
            attr = schema_by_urn(urn).attribute(name)
            if attr is not None:
                return urn, attr
        return None


@lru_cache(maxsize=4096)
def _find(rt: ResourceType, uri: str | None, name: str) -> tuple[str, Attribute] | None:
    """Attribute resolution is pure: cached, since every render and filter asks again."""
    return rt._find(uri, name)


_SCHEMA_FILES = {
    USER_SCHEMA: "User",
    GROUP_SCHEMA: "Group",
    ENTERPRISE_SCHEMA: "EnterpriseUser",
    PRODUCT_SCHEMA: "ProductUser",
}


def schema_by_urn(urn: str) -> Schema:
    return load(_SCHEMA_FILES[urn])


def all_schemas() -> list[Schema]:
    return [load(n) for n in ("User", "EnterpriseUser", "ProductUser", "Group")]


def meta_schemas() -> list[Schema]:
    """The schemas that describe SCIM's own discovery resources (RFC 7643 §8.7.2)."""
    return [load(n) for n in ("ServiceProviderConfig", "ResourceType", "Schema")]


USER = ResourceType(
    "User", "/Users", USER_SCHEMA, (ENTERPRISE_SCHEMA, PRODUCT_SCHEMA), "User Account"
)
GROUP = ResourceType("Group", "/Groups", GROUP_SCHEMA, (), "Group")
RESOURCE_TYPES = {"User": USER, "Group": GROUP}
