"""The discovery endpoints (RFC 7644 §4), readable without a token."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from scim_server.errors import NotFoundError
from scim_server.scim import discovery
from scim_server.scim.errors import ScimError
from scim_server.scim.render import list_response, scim_response
from scim_server.scim.schema import RESOURCE_TYPES
from scim_server.urls import scim_root


def service_provider_config() -> Response:
    return scim_response(discovery.service_provider_config(scim_root(), current_app.config))


def _no_filter() -> None:
    """RFC 7644 §4: a filter on a discovery endpoint SHOULD be refused with 403 (a listing
    answered in full would read as every item matching it)."""
    if "filter" in request.args:
        raise ScimError("Filtering is not supported on this discovery endpoint.", status=403)


def list_resource_types() -> Response:
    _no_filter()
    docs = [discovery.resource_type_doc(name, scim_root()) for name in RESOURCE_TYPES]
    return scim_response(list_response(docs, len(docs), 1))


def get_resource_type(name: str) -> Response:
    for known in RESOURCE_TYPES:
        if known.lower() == name.lower():
            return scim_response(discovery.resource_type_doc(known, scim_root()))
    raise NotFoundError(f"No resource type {name!r}.")


def list_schemas() -> Response:
    _no_filter()
    docs = discovery.schema_docs(scim_root())
    return scim_response(list_response(docs, len(docs), 1))


def get_schema(urn: str) -> Response:
    doc = discovery.find_schema_doc(urn, scim_root())
    if doc is None:
        raise NotFoundError(f"No schema {urn!r}.")
    return scim_response(doc)


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/ServiceProviderConfig", view_func=service_provider_config, methods=["GET"])
    bp.add_url_rule("/ResourceTypes", view_func=list_resource_types, methods=["GET"])
    bp.add_url_rule("/ResourceTypes/<name>", view_func=get_resource_type, methods=["GET"])
    bp.add_url_rule("/Schemas", view_func=list_schemas, methods=["GET"])
    bp.add_url_rule("/Schemas/<path:urn>", view_func=get_schema, methods=["GET"])
