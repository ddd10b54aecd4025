"""A new organization with one console person, on the live server's database."""

from __future__ import annotations

import uuid

from scim_server.db import db
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER, USER_SCHEMA
from scim_server.services import console_access, users
from scim_server.services.organizations import create_organization
from tests.console.browser.conftest import LiveServer


def console_person(live: LiveServer, role: str, org: str = "") -> tuple[str, str]:
    """(org id, user id) of a person holding ``role`` in a new organization."""
    name = org or f"Org {uuid.uuid4().hex[:6]}"
    email = f"{role}@{uuid.uuid4().hex[:6]}.example"
    with db.reader(live.app)() as s:
        org_id = create_organization(s, name).id
    body = {"schemas": [USER_SCHEMA], "userName": email, "emails": [{"value": email}]}
    with db.reader(live.app)() as s:
        user = users.create_user(s, org_id, parse_resource(USER, body, creating=True))
    with db.reader(live.app)() as s:
        console_access.grant(s, org_id, user.id, role)
    return org_id, user.id


def add_user(live: LiveServer, org_id: str, user_name: str, **attrs: object) -> str:
    body = {"schemas": [USER_SCHEMA], "userName": user_name, **attrs}
    with db.reader(live.app)() as s:
        return users.create_user(s, org_id, parse_resource(USER, body, creating=True)).id
