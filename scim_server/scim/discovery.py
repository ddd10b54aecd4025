"""Discovery documents (RFC 7643 §5, §6, §7; RFC 7644 §4): what we truly support."""

from __future__ import annotations

import copy
from typing import Any

from scim_server.scim.schema import (
    RESOURCE_TYPE_SCHEMA,
    RESOURCE_TYPES,
    SPC_SCHEMA,
    Schema,
    all_schemas,
    meta_schemas,
)

Doc = dict[str, Any]


def service_provider_config(base: str, cfg: dict[str, Any]) -> Doc:
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://github.com/scim-server/scim-server#readme",
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": cfg["BULK_MAX_OPERATIONS"],
            # The limit /Bulk enforces itself, above or below SCIM_MAX_BODY_BYTES
            # (``bulk._read_payload``): what a client is told is what it may send.
            "maxPayloadSize": cfg["BULK_MAX_PAYLOAD_BYTES"],
        },
        "filter": {"supported": True, "maxResults": cfg["MAX_PAGE_SIZE"]},
        # RFC 7643 §5: a `password` in POST/PUT/PATCH sets the user's local password
        # (where the organization allows them; Okta's password sync).
        "changePassword": {"supported": True},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A per-organization bearer token created with "
                "`scim-server token create --org ORG` (RFC 6750).",
                "specUri": "https://www.rfc-editor.org/info/rfc6750",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }


def resource_type_doc(name: str, base: str) -> Doc:
    rt = RESOURCE_TYPES[name]
    return {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.core,
        "schemaExtensions": [{"schema": urn, "required": False} for urn in rt.extensions],
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{rt.name}"},
    }


def schema_doc(schema: Schema, base: str) -> Doc:
    doc = copy.deepcopy(schema.document)
    doc["meta"] = {"resourceType": "Schema", "location": f"{base}/Schemas/{schema.id}"}
    return doc


def schema_docs(base: str) -> list[Doc]:
    return [schema_doc(s, base) for s in all_schemas() + meta_schemas()]


def find_schema_doc(urn: str, base: str) -> Doc | None:
    for schema in all_schemas() + meta_schemas():
        if schema.id.lower() == urn.lower():
            return schema_doc(schema, base)
    return None
