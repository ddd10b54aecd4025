"""SSO test helpers: connections, sign-ins through the local IdPs, what a sign-in left."""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent, License, Organization, User
from scim_server.services import licenses
from sso.connections.models import SignInRecord
from tests.sso.saml_idp import WS, Assertion, FakeIdp, encode, valid_response
from tests.support import Scim

OIDC_BASE = "http://127.0.0.1"


def request_id_of(location: str) -> str:
    """The ID of the AuthnRequest in an HTTP-Redirect binding URL."""
    query = parse_qs(urlsplit(location).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    return etree.fromstring(xml).get("ID")


def start_test_login(admin: Scim, client: FlaskClient, conn_id: str) -> str:
    """Ask for a test-mode link, open it: return the AuthnRequest id the IdP answers."""
    resp = admin.post(f"/api/v1/sso/connections/{conn_id}/test", {})
    assert resp.status_code == 200 and resp.get_json()["expires_in"] == 600
    path = urlsplit(resp.get_json()["url"]).path
    started = client.get(path)
    assert started.status_code == 302 and "SAMLRequest=" in started.headers["Location"]
    assert client.get(path).status_code == 400  # single use
    return request_id_of(started.headers["Location"])


@dataclass
class SamlConnection:
    """A SAML connection of the ``scim`` organization, as the admin API returned it."""

    data: dict[str, Any]
    client: FlaskClient

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def acs_path(self) -> str:
        return urlsplit(self.data["acs_url"]).path

    def assertion(self, request_id: str | None, **kw: Any) -> Assertion:
        kw.setdefault("audience", self.data["sp_entity_id"])
        return Assertion(acs_url=self.data["acs_url"], in_response_to=request_id, **kw)

    def start(self, next_path: str = "/after") -> str:
        """Begin an SP-initiated login; return the AuthnRequest ID the IdP must answer."""
        resp = self.client.get(f"/sso/saml/{self.id}/start?next={next_path}")
        assert resp.status_code == 302, resp.get_data(as_text=True)
        return request_id_of(resp.headers["Location"])

    def post(self, xml: str, relay_state: str | None = None) -> Any:
        form = {"SAMLResponse": encode(xml)}
        if relay_state is not None:
            form["RelayState"] = relay_state
        return self.client.post(self.acs_path, data=form)


def oidc_login(client: FlaskClient, conn: dict[str, Any], next_path: str = "/app") -> Any:
    """Browser: start, let the provider auto-consent, come back to our callback."""
    start = client.get(f"/sso/oidc/{conn['id']}/start?next={next_path}")
    assert start.status_code == 302, start.get_data(as_text=True)
    at_op = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    assert at_op.status_code == 302, at_op.text
    back = urlsplit(at_op.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


def read(app: Flask) -> Any:
    """A fresh session on the test transaction (sees what the requests committed)."""
    return db.reader(app)()


def make_person(
    app: Flask,
    scim: Scim,
    user_name: str = "alice@example.com",
    *,
    licensed: bool = True,
    status: str | None = None,
) -> str:
    """A SCIM-provisioned user, with the Engineer license unless ``licensed`` is False."""
    doc = scim.create_user(user_name, emails=[{"value": user_name, "primary": True}])
    with read(app) as s:
        lic = s.scalar(select(License).where(License.org_id == scim.org_id))
    if licensed and lic is None:
        with read(app) as s:
            lic = licenses.create_license(s, scim.org_id, "Engineer", None)
    with read(app) as s, s.begin():
        user = s.get(User, (scim.org_id, doc["id"]))
        if licensed:
            licenses.assign(s, scim.org_id, user, lic, source="manual")
        if status is not None:
            user.status = status
    return doc["id"]


def set_default_license(app: Flask, org_id: str, name: str = "Engineer") -> None:
    """Organization defaults (no rule set): every new user gets ``name`` through the rules."""
    with read(app) as s:
        licenses.create_license(s, org_id, name, None)
    with read(app) as s, s.begin():
        org = s.get(Organization, org_id)
        org.settings = {**(org.settings or {}), "default_license": name}


def sign_ins(app: Flask, org_id: str) -> list[SignInRecord]:
    with read(app) as s:
        return list(
            s.scalars(
                select(SignInRecord).where(SignInRecord.org_id == org_id).order_by(SignInRecord.at)
            )
        )


def events(app: Flask, org_id: str, prefix: str = "signin.") -> list[AuditEvent]:
    with read(app) as s:
        return list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.org_id == org_id, AuditEvent.action.startswith(prefix))
                .order_by(AuditEvent.seq)
            )
        )


def assert_refused(app: Flask, org_id: str, resp: Any, reason: str) -> SignInRecord:
    """Refused with a generic page; the precise reason in the record and the audit event."""
    assert resp.status_code in (400, 403), resp.get_data(as_text=True)
    assert resp.mimetype == "text/html"
    record = sign_ins(app, org_id)[-1]
    assert (record.outcome, record.reason_code) == ("failure", reason), record.detail
    assert record.detail and record.detail not in resp.get_data(as_text=True)
    event = events(app, org_id)[-1]
    assert (event.action, event.outcome) == ("signin.failure", "failure")
    assert event.explanation["reason_code"] == reason
    assert event.detail.startswith(f"{reason}: ")
    return record


PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def session_user(client: FlaskClient) -> str | None:
    """The account the browser's sign-in session is for, or None."""
    with client.session_transaction() as sess:
        return (sess.get("sso") or {}).get("user_id")


def saml_as(
    conn: SamlConnection,
    idp: FakeIdp,
    client: FlaskClient,
    name_id: str,
    email: str | None = None,
    name_id_format: str = PERSISTENT,
    **attributes: list[str],
) -> Any:
    """A complete SP-initiated SAML login in ``client``'s browser, asserted by ``idp``."""
    browser = SamlConnection(conn.data, client)
    request_id = browser.start()
    attrs = {**({WS + "emailaddress": [email]} if email else {}), **attributes}
    assertion = browser.assertion(
        request_id,
        name_id=name_id,
        name_id_format=name_id_format,
        issuer=idp.entity_id,
        attributes=attrs,
    )
    return browser.post(valid_response(assertion, idp))
