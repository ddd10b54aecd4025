"""Journeys: an org admin connects the IdP from its metadata and tests the connection; a
security admin sees who sets connections up, and disables one."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from playwright.sync_api import expect

from scim_server.db import db
from scim_server.services import console_access
from sso.connections import service as connections
from sso.connections.sealing import encryption_secret
from sso.signin import domains
from tests.console.browser.conftest import LiveServer, expect_refusal, shoot
from tests.console.browser.people import add_user, console_person
from tests.sso.saml_idp import Assertion, FakeIdp, encode, valid_response
from tests.support.console import browser_sign_in
from tests.support.dns_server import shared_dns
from tests.support.sso import request_id_of


def _serve_test_idp(page: Any, live: LiveServer, idp: FakeIdp, sp: dict[str, str]) -> None:
    """The suite's test IdP answering in the browser: a sign-in page that posts a signed response.

    The IdP's https address is taken over by the browser and sent on to a page served on
    the SP's own site (a real IdP is another site, whose POST only carries SameSite=None
    cookies, which plain-http test servers cannot set).
    """
    local = f"{live.url}/test-idp/sso"

    def to_local(route: Any) -> None:
        # A fresh navigation (a redirect's next hop is not routed again).
        target = escape(local + "?" + urlsplit(route.request.url).query, {'"': "&quot;"})
        route.fulfill(
            status=200,
            content_type="text/html",
            body=f'<!doctype html><meta http-equiv="refresh" content="0;url={target}">',
        )

    def sign_in_page(route: Any) -> None:
        request_id = request_id_of(route.request.url)
        response = valid_response(
            Assertion(acs_url=sp["acs"], audience=sp["entity"], in_response_to=request_id), idp
        )
        html = (
            "<!doctype html><title>Test IdP</title><h1>Test IdP</h1>"
            f'<form method="post" action="{sp["acs"]}">'
            f'<input type="hidden" name="SAMLResponse" value="{encode(response)}">'
            "<button type=submit>Sign in as alice@example.com</button></form>"
        )
        route.fulfill(status=200, content_type="text/html", body=html)

    page.route("https://idp.example.test/**", to_local)
    page.route(lambda url: url.startswith(local), sign_in_page)


def test_connect_from_metadata_copy_values_and_test(
    page: Any, context: Any, live_server: LiveServer, tmp_path: Any
) -> None:
    """Upload metadata → preview → create → copy the ACS URL → a domain, verified by its TXT
    record → Test connection → the result."""
    org_id, user_id = console_person(live_server, "org_admin", "Acme Corp")
    browser_sign_in(live_server.app, context, live_server.url, org_id, user_id)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    idp = FakeIdp()
    metadata = tmp_path / "entra-metadata.xml"
    metadata.write_text(idp.metadata_xml())

    page.goto("/admin/")
    page.get_by_role("link", name="Single sign-on").first.click()
    page.get_by_role("link", name="New connection").click()
    page.get_by_label("Connection name").first.fill("Entra ID")
    page.get_by_label("Metadata file (XML)").set_input_files(str(metadata))
    page.get_by_role("button", name="Read metadata").click()
    expect(page.locator("#preview-entity")).to_have_text(idp.entity_id)
    shoot(page, "sso-preview")
    page.get_by_role("button", name="Create connection").click()
    expect(page.get_by_role("heading", name="Entra ID")).to_be_visible()
    acs = page.locator("#acs-url").inner_text()
    entity = page.locator("#sp-entity-id").inner_text()
    assert acs.startswith(live_server.url + "/sso/saml/") and acs.endswith("/acs")
    page.get_by_role("button", name="Copy ACS (reply) URL").click()
    expect(page.get_by_role("button", name="Copy ACS (reply) URL")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == acs
    page.get_by_label("Just-in-time creation", exact=False).check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    shoot(page, "sso-connection")
    page.get_by_role("link", name="Manage domains").click()
    page.get_by_label("Domain", exact=True).fill("example.com")
    page.get_by_label("Connection", exact=True).select_option(label="Entra ID")
    page.get_by_role("button", name="Add domain").click()
    expect(page.locator(".plain-list")).to_contain_text("example.com")
    expect(page.locator(".domain-item")).to_contain_text("Pending")
    # The TXT record to publish, copied as the admin would paste it into the DNS zone.
    page.get_by_role("button", name="Copy the record value for example.com").click()
    value = page.evaluate("navigator.clipboard.readText()")
    assert value.startswith("scim-server-verification=")
    dns = shared_dns()
    dns.reset()  # nothing other tests of this process published
    live_server.app.config["DNS_RESOLVERS"] = dns.resolvers
    expect_refusal(page)  # 409: the record is not published yet
    page.get_by_role("button", name="Verify example.com").click()
    expect(page.get_by_role("alert")).to_contain_text("does not exist in DNS yet")
    shoot(page, "sso-domain-pending")
    dns.publish("_scim-server-verification.example.com", value)
    page.get_by_role("button", name="Verify example.com").click()
    expect(page.get_by_role("status")).to_contain_text("example.com is verified")
    expect(page.locator(".domain-item")).to_contain_text("Verified")
    shoot(page, "sso-list")
    page.get_by_role("link", name="Entra ID").click()

    _serve_test_idp(page, live_server, idp, {"acs": acs, "entity": entity})
    page.get_by_role("button", name="Test connection").click()
    page.get_by_role("link", name="Start the test sign-in").click()
    page.get_by_role("button", name="Sign in as alice@example.com").click()
    expect(page.get_by_role("heading", name="SSO connection test")).to_be_visible()
    body = page.locator("main").inner_text()
    assert "Entra ID" in body and "alice@example.com" in body
    assert "Nobody was signed in or created" in body
    assert "would create the account (JIT)" in body  # the domain is allowed, JIT is on
    shoot(page, "sso-test-result")
    page.goto("/admin/sign-ins/")
    expect(page.locator("#results")).to_contain_text("test")


def test_a_security_admin_is_told_who_sets_up_sso_and_disables_a_connection(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """No New connection, Add domain or Update metadata: the hint says an org admin sets
    connections and domains up, and why. Disabling one (an incident) is theirs."""
    org_id, _boss = console_person(live_server, "org_admin", "Globex")
    with db.reader(live_server.app)() as s:
        conn = connections.create_connection(
            s,
            org_id,
            {"protocol": "saml", "name": "Entra ID"},
            live_server.url,
            secret=encryption_secret(live_server.app),
        )
    with db.reader(live_server.app)() as s:
        connections.apply_metadata(
            s, org_id, conn.id, connections.read_metadata(FakeIdp().metadata_xml(), None), None
        )
    with db.reader(live_server.app)() as s:
        domains.add_domain(s, org_id, "globex.example", conn.id)
    sec = add_user(live_server, org_id, "sec@globex.example")
    with db.reader(live_server.app)() as s:
        console_access.grant(s, org_id, sec, "security_admin")
    browser_sign_in(live_server.app, context, live_server.url, org_id, sec)
    page.goto("/admin/")
    page.get_by_role("link", name="Single sign-on").first.click()
    hint = page.get_by_text("Connections and e-mail domains are set up by an organization admin")
    expect(hint).to_be_visible()
    expect(page.get_by_role("link", name="New connection")).to_have_count(0)
    expect(page.get_by_role("button", name="Add domain")).to_have_count(0)
    expect(page.get_by_role("button", name="Verify globex.example")).to_have_count(0)
    shoot(page, "sso-list-security-admin")
    page.get_by_role("link", name="Entra ID").click()
    expect(hint).to_be_visible()
    expect(page.get_by_text("Update from new metadata")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete connection")).to_have_count(0)
    page.get_by_label("Enabled", exact=False).uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    expect(page.get_by_text("Disabled: an organization admin enables it.")).to_be_visible()
    expect(page.get_by_label("Enabled", exact=False)).to_have_count(0)
    shoot(page, "sso-connection-security-admin")


def test_a_connection_page_fits_a_phone_with_a_long_connection_name(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """A connection named as IdPs name their apps (one long token, no spaces): at 390 px
    the breadcrumb above the heading wraps as the heading does; the page never scrolls
    sideways (``shoot`` checks it: tests/screenshots/sso-connection-long-name-phone.png)."""
    org_id, admin = console_person(live_server, "org_admin")
    name = "Contoso_EntraID_Production_SAML_8f3b2c1d4e5f6789abcd"
    with db.reader(live_server.app)() as s:
        conn = connections.create_connection(
            s,
            org_id,
            {"protocol": "saml", "name": name},
            live_server.url,
            secret=encryption_secret(live_server.app),
        )
    with db.reader(live_server.app)() as s:
        connections.apply_metadata(
            s, org_id, conn.id, connections.read_metadata(FakeIdp().metadata_xml(), None), None
        )
    browser_sign_in(live_server.app, context, live_server.url, org_id, admin)
    page.goto(f"/admin/sso/{conn.id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(page.locator(".crumbs")).to_contain_text(name)
    shoot(page, "sso-connection-long-name")
