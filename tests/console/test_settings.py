"""The settings page through the HTTP client: the whole document, its checks, the preview."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.services import licenses, roles, settings
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console


@pytest.fixture
def security(app: Flask, client: FlaskClient, scim: Scim) -> FlaskClient:
    sign_in_console(app, client, scim, "security_admin", "sec@example.com")
    return client


def _form(**overrides: object) -> dict[str, object]:
    """The form as the page sends it with the defaults shown (unticked boxes absent)."""
    current = settings.IdentitySettings().as_dict()
    form: dict[str, object] = {
        k: v
        for k, v in current.items()
        if not isinstance(v, bool) and v is not None and k not in ("match_keys", "default_roles")
    }
    form["match_keys"] = list(current["match_keys"])
    for flag, on in current.items():
        if isinstance(on, bool) and on:
            form[flag] = "1"
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_page_shows_the_current_settings(security: FlaskClient) -> None:
    html = security.get("/admin/settings/").get_data(as_text=True)
    assert 'name="password_min_length" type="number" value="12"' in html
    assert "Today: <strong>password allowed</strong>" in html


def test_save_the_whole_document(app: Flask, security: FlaskClient, scim: Scim) -> None:
    """Format, defaults, a box unticked and numbers are stored as one document."""
    with db.reader(app)() as s:
        licenses.create_license(s, scim.org_id, "Engineer", None)
    with db.reader(app)() as s:
        roles.create_role(s, scim.org_id, "Portal", "portal")
    form = _form(
        username_format="{given}.{family}",
        default_license="Engineer",
        default_roles=["Portal"],
        password_min_length="14",
        require_mfa="1",
    )
    form.pop("refuse_common_passwords")
    resp = security.post("/admin/settings/", data={"csrf_token": csrf_token(security), **form})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    with db.reader(app)() as s:
        got = settings.get_settings(s, scim.org_id)
    assert got.username_format == "{given}.{family}" and got.default_license == "Engineer"
    assert got.default_roles == ("Portal",) and got.number("password_min_length") == 14
    assert got.require_mfa is True and got.refuse_common_passwords is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"password_min_length": "200"},
            "“Password length, at least” must be a whole number from 8 to 128",
        ),
        ({"password_min_length": "ten"}, "“Password length, at least” must be a whole number"),
        ({"default_license": "Ghost"}, "“Default license”: unknown license"),
        (
            {"lockout_minutes": "1000", "lockout_max_minutes": "500"},
            "“First lock lasts (minutes)” must not exceed “Longest lock (minutes)”",
        ),
        ({"match_keys": []}, "“Find the existing contact” must be a non-empty list"),
        ({"username_format": "{bogus}"}, "“Username format” has unknown placeholder {bogus}"),
        ({"username_format": "{given"}, "“Username format” is malformed"),
        ({"username_format": "jdoe"}, "“Username format” has no placeholder"),
    ],
)
def test_bad_values_are_refused_and_kept_in_the_form(
    app: Flask, security: FlaskClient, scim: Scim, overrides: dict[str, object], message: str
) -> None:
    resp = security.post(
        "/admin/settings/", data={"csrf_token": csrf_token(security), **_form(**overrides)}
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and message in html
    with db.reader(app)() as s:
        assert settings.get_settings(s, scim.org_id) == settings.IdentitySettings()


def test_a_broken_username_format_is_refused_on_the_page(
    app: Flask, security: FlaskClient, scim: Scim
) -> None:
    """Saving a format the creates could not use: 400, the reason in the page's alert, the
    format kept in its box to fix, nothing stored (it used to be saved and then ignored)."""
    form = _form(username_format="{given}.{surname}")
    resp = security.post("/admin/settings/", data={"csrf_token": csrf_token(security), **form})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert (
        '<p class="alert alert-error" role="alert">“Username format” has unknown placeholder '
        "{surname}" in html
    )
    assert 'name="username_format" type="text" value="{given}.{surname}"' in html
    with db.reader(app)() as s:
        assert settings.get_settings(s, scim.org_id).username_format is None


def test_username_preview(security: FlaskClient, scim: Scim) -> None:
    """htmx gets the preview block: the newest accounts under the format, or the format's problem."""
    scim.create_user("ada@example.com", name={"givenName": "Ada", "familyName": "Lovelace"})
    scim.create_user("bob@example.com")
    resp = security.get(
        "/admin/settings/username-preview?username_format={given}.{family}",
        headers={"HX-Request": "true"},
    )
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="username-preview"')
    assert "<strong>Ada.Lovelace</strong>" in html
    assert "bob@example.com" in html and "has no value" in html
    html = security.get(
        "/admin/settings/username-preview?username_format={nope}", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert "unknown placeholder {nope}" in html


def test_user_manager_reads_but_cannot_save(app: Flask, client: FlaskClient, scim: Scim) -> None:
    sign_in_console(app, client, scim, "user_manager")
    html = client.get("/admin/settings/").get_data(as_text=True)
    assert "Save settings" not in html and "disabled" in html
    resp = client.post("/admin/settings/", data={"csrf_token": csrf_token(client), **_form()})
    assert resp.status_code == 403


def test_default_groups_are_chosen_by_name(app: Flask, security: FlaskClient, scim: Scim) -> None:
    """No groups: the page says where they come from. With groups: a box per group by name,
    the help says who joins them; ticking one stores its id; an unknown id is refused."""
    html = security.get("/admin/settings/").get_data(as_text=True)
    assert "No groups yet: groups come from your IdP over SCIM." in html
    staff = scim.create_group("Staff")
    scim.create_group("Ops")
    html = security.get("/admin/settings/").get_data(as_text=True)
    assert "<legend>Default groups</legend>" in html
    assert f'name="default_groups" value="{staff["id"]}"> Staff' in html
    assert "users your IdP provisions get the groups your IdP sends" in html
    resp = security.post(
        "/admin/settings/",
        data={"csrf_token": csrf_token(security), **_form(default_groups=[staff["id"]])},
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)
    with db.reader(app)() as s:
        assert settings.get_settings(s, scim.org_id).default_groups == (staff["id"],)
    html = security.get("/admin/settings/").get_data(as_text=True)
    assert f'name="default_groups" value="{staff["id"]}" checked> Staff' in html
    resp = security.post(
        "/admin/settings/",
        data={"csrf_token": csrf_token(security), **_form(default_groups=["nope"])},
    )
    assert resp.status_code == 400
    assert "“Default groups”: no group with id &#39;nope&#39;" in resp.get_data(as_text=True)
    with db.reader(app)() as s:
        assert settings.get_settings(s, scim.org_id).default_groups == (staff["id"],)
    # Without the CSRF token nothing is saved.
    resp = security.post("/admin/settings/", data=_form(default_groups=[]))
    assert resp.status_code == 400
    with db.reader(app)() as s:
        assert settings.get_settings(s, scim.org_id).default_groups == (staff["id"],)
